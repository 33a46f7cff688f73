"""A module subclass in one file: GenreClassifier with an L1 penalty on the backbone's weights in training_step."""

from __future__ import annotations

from typing import Any

import torch

from genre_torch.core.training.module import GenreClassifier


class L1Classifier(GenreClassifier):
    """GenreClassifier whose training loss adds l1 * sum(|w|) over the backbone's weights.

    Args:
        l1: Weight of the L1 penalty (the other settings are GenreClassifier's).
    """

    def __init__(self, *args: Any, l1: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        penalty = sum(p.abs().sum() for name, p in self.backbone.named_parameters() if name.endswith("weight"))
        self.log("train/l1", penalty, on_step=False, on_epoch=True)
        return loss + self.hparams.l1 * penalty
