"""A new batch transform in one file: Gaussian noise on the standardised numeric columns of training batches."""

from __future__ import annotations

import torch

from genre_torch.core.training.transforms import BatchTransform


class NumericNoise(BatchTransform):
    """Adds N(0, std^2) noise to the first n_numeric columns (the Preprocessor puts the numeric ones first).

    Args:
        num_classes: Number of genres (from the data).
        std: Standard deviation of the noise, in units of the standardised features.
        n_numeric: How many leading columns get noise.
    """

    def __init__(self, num_classes: int, std: float = 0.1, n_numeric: int = 11) -> None:
        super().__init__(num_classes)
        self.std, self.n_numeric = std, n_numeric

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A noisy copy of the batch; the labels are unchanged."""
        noise = torch.zeros_like(x)
        noise[:, : self.n_numeric] = torch.randn_like(x[:, : self.n_numeric]) * self.std
        return x + noise, y
