"""Training criteria: the same one gives the training loss, val/loss (what early stopping watches) and test/loss.

A new loss is a Criterion subclass in any importable file, chosen with
`--model.criterion path.to.MyLoss` (or `class_path`/`init_args` in YAML).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genre_torch.core.errors import GenreTorchError
from genre_torch.core.models.layers import check_probability


class Criterion(nn.Module):
    """Base of criteria: forward(logits, target) -> mean loss over the batch.

    `target` holds class indices (long, shape (batch,)) or class probabilities (float, (batch, num_classes)),
    as batch transforms such as Mixup produce. __init__ takes num_classes first (from the data).
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def distribution(self, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
        """Target as class probabilities, with label smoothing applied."""
        q = F.one_hot(target, self.num_classes).float() if target.dtype == torch.long else target.float()
        return q * (1 - smoothing) + smoothing / self.num_classes if smoothing else q


class CrossEntropy(Criterion):
    """Cross-entropy, optionally with label smoothing.

    Args:
        num_classes: Number of genres (from the data).
        label_smoothing: Share of the target mass spread evenly over all genres.
    """

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__(num_classes)
        self.label_smoothing = check_probability("label_smoothing", label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy."""
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)


class FocalLoss(Criterion):
    """Focal loss (Lin et al. 2017): sum_c q_c (1 - p_c)^gamma (-log p_c), q the (smoothed) target distribution.

    With gamma = 0 it is cross-entropy; larger gamma down-weights songs the model already gets right.

    Args:
        num_classes: Number of genres (from the data).
        gamma: Focusing parameter (>= 0).
        label_smoothing: Share of the target mass spread evenly over all genres.
    """

    def __init__(self, num_classes: int, gamma: float = 2.0, label_smoothing: float = 0.0) -> None:
        super().__init__(num_classes)
        if gamma < 0:
            raise GenreTorchError(f"gamma must be >= 0, got {gamma}")
        self.gamma, self.label_smoothing = gamma, check_probability("label_smoothing", label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean focal loss."""
        logp = F.log_softmax(logits.float(), dim=-1)
        weight = (1 - logp.exp()).pow(self.gamma)
        return -(self.distribution(target, self.label_smoothing) * weight * logp).sum(-1).mean()
