"""Interpretation: Grad-CAM / Grad-CAM++ heatmaps, activation panels and first-layer filters."""
from .api import explain_images, feature_maps
from .gradcam import METHODS, find_layer, grad_cam

__all__ = ["METHODS", "explain_images", "feature_maps", "find_layer", "grad_cam"]
