"""Models: a registry of classifiers that share one interface (see base.Classifier)."""
from .base import Classifier
from .factory import count_parameters, create_model, list_models, model_entry
from .from_checkpoint import Rebuilt, model_from_checkpoint
from .registry import register_model

__all__ = ["Classifier", "Rebuilt", "create_model", "list_models", "model_entry", "model_from_checkpoint",
           "register_model", "count_parameters"]
