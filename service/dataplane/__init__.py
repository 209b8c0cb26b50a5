"""The data plane: images or series in, results out, for every protocol (v1, v2, the stream).

``images`` and ``forecast`` are what the routes call; ``predict`` decodes, runs and formats;
``imaging`` decodes safely; ``tasks/`` holds the pure numpy pre- and post-processing.
"""
