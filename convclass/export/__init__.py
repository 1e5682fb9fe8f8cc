"""Exporting trained models (ONNX, TorchScript, int8) and running the exported files.

    from convclass.export import export_model, load_predictor
    res = export_model("runs/digits-cnn3", format="onnx", dynamic_batch=True)
    onnx_model = load_predictor(res.path)        # OnnxModel: predict_proba(uint8 images) like LoadedModel
"""
from .exporter import FORMATS, ExportResult, export_model
from .metadata import EXPORT_FORMAT, sidecar_path
from .exported import ExportedModel
from .runtime import detect_runtime, load_predictor, predict_images

__all__ = ["EXPORT_FORMAT", "FORMATS", "ExportResult", "ExportedModel", "detect_runtime", "export_model",
           "load_predictor", "predict_images", "sidecar_path"]
