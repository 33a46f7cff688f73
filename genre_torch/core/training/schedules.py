"""Learning-rate schedules over the whole run, stepped once per optimiser step: `--lr_scheduler NAME`.

Each is a torch LRScheduler. `total_steps` left at None is filled by GenreClassifier with the run's optimiser steps
(max_epochs x batches per epoch, or max_steps); the length is saved with the scheduler's state, so a resumed run
that would change it is refused instead of silently stretching or breaking the schedule.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

from genre_torch.core.errors import GenreTorchError


def total_steps(trainer: Any) -> int:
    """Optimiser steps of a Trainer's whole run; a loader may say how many an epoch takes (`optimizer_steps`:
    core.data.BatchGroups, where one batch of the loader is several optimiser steps)."""
    steps = trainer.estimated_stepping_batches  # also makes Lightning load the training data
    per_epoch = getattr(trainer.train_dataloader, "optimizer_steps", None)
    if per_epoch is not None:  # estimated_stepping_batches counted the loader's batches
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
        steps = min(epochs * per_epoch, trainer.max_steps if trainer.max_steps != -1 else math.inf)
    if math.isinf(steps):
        raise GenreTorchError("a learning-rate schedule needs a finite run: set --trainer.max_epochs or max_steps")
    return int(steps)


class _Shaped(LambdaLR):
    """Linear warm-up over a share of the run, then a multiplier shape(t) of the base LR, t in [0, 1]."""

    def __init__(self, optimizer: Optimizer, total_steps: int | None = None, warmup: float = 0.0) -> None:
        if total_steps is None or total_steps < 1:
            raise ValueError(f"{type(self).__name__} needs total_steps >= 1, got {total_steps}")
        if not 0 <= warmup < 1:
            raise ValueError(f"{type(self).__name__}: warmup must be in [0, 1), got {warmup}")
        self.total_steps, self.warmup = total_steps, warmup
        super().__init__(optimizer, lambda step: self.multiplier(step))  # a plain function: not saved

    def multiplier(self, step: int) -> float:
        """The factor of the base learning rate after `step` optimiser steps."""
        warm = int(self.warmup * self.total_steps)
        if step < warm:
            return (step + 1) / warm
        return self.shape(min(1.0, (step - warm) / max(1, self.total_steps - warm)))

    def shape(self, t: float) -> float:  # pragma: no cover - every schedule overrides it
        """The multiplier at progress t in [0, 1] after the warm-up."""
        raise NotImplementedError


class WarmupCosine(_Shaped):
    """Cosine decay of the learning rate to 0 over the run, after an optional linear warm-up.

    Args:
        optimizer: The optimiser (given by GenreClassifier).
        total_steps: Optimiser steps of the run (None: filled from the Trainer).
        warmup: Share of all steps spent warming the learning rate up linearly.
    """

    def shape(self, t: float) -> float:
        """Half a cosine from 1 to 0."""
        return 0.5 * (1 + math.cos(math.pi * t))


class CosLog4(_Shaped):
    """RealMLP's schedule: 4 cosine cycles on a log time scale, each twice as long as the previous one.

    Args:
        optimizer: The optimiser (given by GenreClassifier).
        total_steps: Optimiser steps of the run (None: filled from the Trainer).
        warmup: Share of all steps spent warming the learning rate up linearly.
    """

    def shape(self, t: float) -> float:
        """Four cosine cycles over log2(1 + 15 t)."""
        return 0.5 * (1 - math.cos(2 * math.pi * math.log2(1 + 15 * t)))


class OneCycle(OneCycleLR):
    """torch's OneCycleLR peaking at each parameter group's own learning rate (RealMLP's LR factors stay).

    Args:
        optimizer: The optimiser (given by GenreClassifier).
        total_steps: Optimiser steps of the run (None: filled from the Trainer).
        pct_start: Share of the run spent raising the learning rate to its peak.
        div_factor: The starting learning rate is the peak / div_factor.
        final_div_factor: The final learning rate is the starting one / final_div_factor.
        cycle_momentum: Cycle momentum (Adam's beta1) inversely to the learning rate, between 0.85 and 0.95.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None = None,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        cycle_momentum: bool = True,
    ) -> None:
        peaks = [group["lr"] for group in optimizer.param_groups]
        super().__init__(
            optimizer,
            max_lr=peaks,
            total_steps=total_steps,
            pct_start=pct_start,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
            cycle_momentum=cycle_momentum,
        )
