"""The model repository: manifests, one loaded ``ModelVersion`` each, the registry that finds,
validates, versions and swaps them, and the ONNX Runtime sessions they run on."""
