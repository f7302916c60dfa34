"""Taking a trained detector out of iadet: ONNX (:mod:`.to_onnx`) and stock torchvision (:mod:`.stock`)."""

from iadet.export.stock import stock_code, stock_detector, uses_frozen_bn
from iadet.export.to_onnx import compare_detections, export_onnx, run_onnx, run_torch

__all__ = [
    "compare_detections",
    "export_onnx",
    "run_onnx",
    "run_torch",
    "stock_code",
    "stock_detector",
    "uses_frozen_bn",
]
