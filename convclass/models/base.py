"""One interface for every model: features, head, replace-the-head, and the layer Grad-CAM should look at."""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["Classifier"]


class Classifier(nn.Module):
    """`features` maps (B, C, H, W) to a feature map or vector; `head` maps that to (B, num_classes) logits."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features = features
        self.head = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @property
    def num_classes(self) -> int:
        return self.classifier_layer().out_features

    def classifier_layer(self) -> nn.Linear:
        last = [m for m in self.head.modules() if isinstance(m, nn.Linear)]
        return last[-1]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer (fine-tuning on a dataset with another class count)."""
        for parent in self.head.modules():
            for name, child in parent.named_children():
                if child is self.classifier_layer():
                    setattr(parent, name, nn.Linear(child.in_features, num_classes))
                    return

    def gradcam_layer(self) -> str | None:
        """Name of the last convolution in `features` (Grad-CAM's default), None for models without one."""
        convs = [n for n, m in self.named_modules() if isinstance(m, nn.Conv2d) and n.startswith("features")]
        return convs[-1] if convs else None
