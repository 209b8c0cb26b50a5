"""polypserve: inference for endoscopy and forecasting ONNX models."""

__version__ = "0.1.0"
