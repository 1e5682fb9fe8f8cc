"""Models: a registry of classifiers that share one interface (see base.Classifier)."""
from .base import Classifier
from .registry import count_parameters, create_model, list_models, model_entry, register_model

__all__ = ["Classifier", "create_model", "list_models", "model_entry", "register_model", "count_parameters"]
