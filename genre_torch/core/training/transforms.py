"""Training-batch transforms (augmentation): applied to training batches only, never to validation or test.

A new one is a BatchTransform subclass in any importable file, chosen with `--model.batch_transform path.to.Class`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genre_torch.core.models.layers import check_positive, check_probability


class BatchTransform(nn.Module):
    """Base of batch transforms: forward(x, y) -> (x', target).

    `target` is class indices or class probabilities (batch, num_classes); the criterion accepts both.
    Random draws use torch's global generators, whose states every checkpoint stores, so a resumed run
    draws what an uninterrupted one would. __init__ takes num_classes first (from the data).
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes


class Mixup(BatchTransform):
    """mixup (Zhang et al. 2018): x' = lam x + (1 - lam) x[perm], target mixed the same way, lam ~ Beta(alpha, alpha).

    Args:
        num_classes: Number of genres (from the data).
        alpha: Beta distribution parameter (smaller: mixes closer to one of the two songs).
        prob: Share of training batches that are mixed.
    """

    def __init__(self, num_classes: int, alpha: float = 0.2, prob: float = 1.0) -> None:
        super().__init__(num_classes)
        self.alpha, self.prob = check_positive("alpha", alpha), check_probability("prob", prob, upper_open=False)
        self.beta = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A mixed batch and its mixed class probabilities."""
        if self.prob < 1 and float(torch.rand(())) >= self.prob:
            return x, y
        lam = float(self.beta.sample())
        perm = torch.randperm(len(x), device=x.device)
        target = F.one_hot(y, self.num_classes).to(x.dtype)
        return x.lerp(x[perm], 1 - lam), target.lerp(target[perm], 1 - lam)
