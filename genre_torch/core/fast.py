"""The grouped fast path, an explicit opt-in: `--data.batches_per_step K` (K > 1).

Lightning's per-call cost (hooks, progress, logging checks) is about a millisecond on a CPU, as much as a step
of a small MLP. Here one `training_step` call takes K consecutive batches (core.data.BatchGroups) and takes one
optimiser step per batch, through Lightning's public manual optimisation (`manual_backward`,
`LightningOptimizer.step`), so `global_step`, `max_steps`, loss scaling, DDP and the backward and
optimiser-step hooks behave as usual. What runs once per training_step call instead of once per batch
(batch-level hooks, batch-counting Trainer limits) is refused at startup by `check`, never skipped.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import (
    Callback,
    GradientAccumulationScheduler,
    LearningRateFinder,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    StochasticWeightAveraging,
)
from pytorch_lightning.utilities.model_helpers import is_overridden

from genre_torch.core.errors import GenreTorchError

# module hooks that Lightning calls per training_step call, or only under automatic optimisation
MODULE_HOOKS = (
    "training_step", "on_train_batch_start", "on_train_batch_end", "optimizer_step", "optimizer_zero_grad",
    "on_before_zero_grad", "backward", "configure_gradient_clipping",
)  # fmt: skip
CALLBACK_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_before_zero_grad")


def enabled(trainer: pl.Trainer | None, datamodule: Any = None) -> bool:
    """Whether the data module groups training batches (batches_per_step > 1)."""
    datamodule = datamodule if datamodule is not None else getattr(trainer, "datamodule", None)
    return getattr(datamodule, "batches_per_step", 1) > 1


def check(trainer: pl.Trainer, module: pl.LightningModule, datamodule: Any = None) -> None:
    """Refuse, in one line, every Trainer option, callback or hook override the fast path cannot honour."""
    if not enabled(trainer, datamodule):
        return
    k = getattr(datamodule if datamodule is not None else trainer.datamodule, "batches_per_step", 1)
    why = f"--data.batches_per_step {k} (the fast path) cannot honour"
    fix = "; drop it (--data.batches_per_step 1) to train on Lightning's standard path"
    limits = {
        "--trainer.accumulate_grad_batches": trainer.accumulate_grad_batches != 1,
        "--trainer.gradient_clip_val": bool(trainer.gradient_clip_val),
        "--trainer.limit_train_batches": trainer.limit_train_batches != 1.0,
        "--trainer.val_check_interval": trainer.val_check_interval != 1.0,
        "--trainer.overfit_batches": trainer.overfit_batches != 0,
    }
    for option, bad in limits.items():
        if bad:
            raise GenreTorchError(f"{why} {option} (it counts training_step calls, each {k} batches){fix}")
    base = next(c for c in type(module).__mro__ if "training_loss" in vars(c))  # GenreClassifier, not a subclass
    for hook in MODULE_HOOKS:
        if is_overridden(hook, module, base):
            raise GenreTorchError(f"{why} {type(module).__name__}.{hook} (called per group of batches){fix}")
    for callback in trainer.callbacks:
        problem = _callback_problem(callback)
        if problem:
            raise GenreTorchError(f"{why} {type(callback).__name__}: {problem}{fix}")


def _callback_problem(callback: Callback) -> str | None:
    """Why a callback cannot run on the fast path, or None."""
    if isinstance(callback, ModelCheckpoint):
        return None  # its every_n_train_steps is not public: GenreCLI checks it in the config
    if isinstance(callback, LearningRateMonitor):
        ok = callback.logging_interval == "epoch"
        return None if ok else "logging_interval must be 'epoch' (it logs per training_step call)"
    if isinstance(callback, ProgressBar):
        return None  # counts training_step calls: display only
    hooks = [h for h in CALLBACK_HOOKS if is_overridden(h, callback, Callback)]
    if isinstance(callback, (StochasticWeightAveraging, GradientAccumulationScheduler, LearningRateFinder)):
        return "it needs automatic optimisation"
    return f"it overrides {', '.join(hooks)}" if hooks else None


def training_step(module: pl.LightningModule, group: list) -> None:
    """One optimiser step per batch of a group, through Lightning's manual optimisation."""
    trainer = module.trainer
    opt = module.optimizers()
    per_step = [c for c in trainer.lr_scheduler_configs if c.interval == "step"]
    for x, y in group:
        if 0 <= trainer.max_steps <= trainer.global_step:  # Lightning checks max_steps only between calls
            break
        loss, logits = module.training_loss(x, y)
        opt.zero_grad(set_to_none=True)
        module.manual_backward(loss)
        opt.step()
        for config in per_step:
            if trainer.global_step % config.frequency == 0:
                config.scheduler.step()
        module.count(loss, logits, y)


def step_epoch_schedulers(module: pl.LightningModule) -> None:
    """Under manual optimisation Lightning leaves schedulers to the module: step the per-epoch ones."""
    if module.automatic_optimization:
        return
    for config in module.trainer.lr_scheduler_configs:
        if config.interval == "epoch" and (module.current_epoch + 1) % config.frequency == 0:
            config.scheduler.step()


def total_steps(trainer: pl.Trainer) -> int:
    """Optimiser steps of the whole run (for learning-rate schedules)."""
    steps = trainer.estimated_stepping_batches  # also makes Lightning load the training data
    loader = trainer.train_dataloader
    if hasattr(loader, "optimizer_steps"):  # grouped: estimated_stepping_batches counted groups
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
        steps = min(epochs * loader.optimizer_steps, trainer.max_steps if trainer.max_steps != -1 else math.inf)
    if math.isinf(steps):
        raise GenreTorchError("a learning-rate schedule needs a finite run: set --trainer.max_epochs or max_steps")
    return int(steps)
