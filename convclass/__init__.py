"""convclass: image classification with convolutional networks.

The CLI is a thin layer over these functions, which work the same from a notebook:

    from convclass import train, evaluate, predict, load_model
    result = train(data="digits", model="cnn3", epochs=20)
    evaluate(result.run_dir)
"""
from __future__ import annotations

from .runtime import short_openmp_spin

# The one setting made on import: it must come before torch loads its OpenMP runtime, which importing any
# convclass module that computes does (runtime.py says why and how to opt out).
short_openmp_spin()

__version__ = "0.1.0"
__all__ = ["train", "evaluate", "predict", "load_model", "list_models", "create_model", "prepare_data",
           "TrainConfig", "ConvclassError", "__version__", "inspect_data", "build_report", "explain_images",
           "cross_validate", "compare_runs", "lr_find", "tune", "export_model", "load_predictor",
           "serve_model"]

# Imports are lazy so `import convclass` is fast and does no work (no torch import until needed).
_LAZY = {
    "train": ("convclass.pipeline", "train_and_report"),
    "evaluate": ("convclass.pipeline", "evaluate_and_report"),
    "predict": ("convclass.inference", "predict"),
    "load_model": ("convclass.inference", "load_model"),
    "list_models": ("convclass.models", "list_models"),
    "create_model": ("convclass.models", "create_model"),
    "prepare_data": ("convclass.data", "prepare_data"),
    "TrainConfig": ("convclass.config", "TrainConfig"),
    "ConvclassError": ("convclass.errors", "ConvclassError"),
    "inspect_data": ("convclass.inspection", "inspect_data"),
    "build_report": ("convclass.reporting", "build_report"),
    "explain_images": ("convclass.interpret", "explain_images"),
    "cross_validate": ("convclass.pipeline", "cross_validate"),
    "compare_runs": ("convclass.reporting.compare", "compare_runs"),
    "lr_find": ("convclass.tuning", "lr_find"),
    "tune": ("convclass.tuning", "tune"),
    "export_model": ("convclass.export", "export_model"),
    "load_predictor": ("convclass.export", "load_predictor"),
    "serve_model": ("convclass.serve", "serve_model"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'convclass' has no attribute {name!r}")
