"""The data plane: images or series in, results out, for every protocol (v1, v2, the stream)."""
