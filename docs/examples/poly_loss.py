"""A new loss in one file: Poly-1 loss (Leng et al. 2022), cross-entropy + epsilon * (1 - p_true)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genre_torch.core.training.losses import Criterion


class PolyLoss(Criterion):
    """Cross-entropy plus epsilon times the probability mass missing from the target.

    Args:
        num_classes: Number of genres (from the data).
        epsilon: Weight of the polynomial term (0 gives cross-entropy).
    """

    def __init__(self, num_classes: int, epsilon: float = 1.0) -> None:
        super().__init__(num_classes)
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean Poly-1 loss; target is class indices or class probabilities (e.g. from Mixup)."""
        q = self.distribution(target)
        p_true = (logits.softmax(-1) * q).sum(-1)
        return F.cross_entropy(logits, q) + self.epsilon * (1 - p_true).mean()
