"""The grouped fast path, an explicit opt-in: `--data.batches_per_step K` (K > 1).

Lightning's per-call cost (hooks, progress, logging checks) is about a millisecond on a CPU, as much as a step
of a small MLP. Here one `training_step` call takes K consecutive batches (core.data.BatchGroups) and takes one
optimiser step per batch, through Lightning's public manual optimisation (`manual_backward`,
`LightningOptimizer.step`), so `global_step`, `max_steps`, loss scaling, DDP and the backward and
optimiser-step hooks behave as usual. What runs once per training_step call instead of once per batch
(batch-level hooks, batch-counting Trainer limits) is refused at startup by `check`, never skipped.

The module knows nothing of it: the `FastPath` callback switches a module to manual optimisation and gives it
the grouped training step for the fit (it stays so after the fit: the Trainer reads global_step from the manual
loop). GenreCLI adds it when --data.batches_per_step > 1; from Python, pass `callbacks=[FastPath()]` to the Trainer
beside such a datamodule.
"""

from __future__ import annotations

import functools

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
from genre_torch.core.training.stop import StopOnSignal

# module hooks that Lightning calls per training_step call, or only under automatic optimisation
MODULE_HOOKS = (
    "training_step", "on_train_batch_start", "on_train_batch_end", "optimizer_step", "optimizer_zero_grad",
    "on_before_zero_grad", "backward", "configure_gradient_clipping",
)  # fmt: skip
CALLBACK_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_before_zero_grad")


class FastPath(Callback):
    """The grouped fast path for one fit: manual optimisation, one optimiser step per batch of a group."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Refuse what the fast path cannot honour, then give the module the grouped training step."""
        if stage != "fit":
            return
        k = getattr(trainer.datamodule, "batches_per_step", 1)
        if k <= 1:
            raise GenreTorchError("the FastPath callback needs a datamodule with batches_per_step > 1")
        vars(pl_module).pop("training_step", None)  # a module fitted on the fast path before: its class's own
        check(trainer, pl_module, k)
        pl_module.automatic_optimization = False
        pl_module.training_step = functools.partial(training_step, pl_module)  # this instance only

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Under manual optimisation Lightning leaves schedulers to the module: step the per-epoch ones."""
        for config in trainer.lr_scheduler_configs:
            if config.interval == "epoch" and (trainer.current_epoch + 1) % config.frequency == 0:
                config.scheduler.step()


def install(trainer: pl.Trainer, module: pl.LightningModule, batches_per_step: int, checkpoint: dict) -> None:
    """Add FastPath to a fit's Trainer, refusing at once what it cannot honour (`checkpoint`: the config's)."""
    if checkpoint.get("every_n_train_steps") or checkpoint.get("train_time_interval"):
        raise GenreTorchError(
            "--data.batches_per_step > 1 (the fast path) cannot honour --checkpoint.every_n_train_steps or "
            "train_time_interval (they count training_step calls); use --data.batches_per_step 1"
        )
    trainer.callbacks.append(FastPath())
    check(trainer, module, batches_per_step)


def check(trainer: pl.Trainer, module: pl.LightningModule, k: int) -> None:
    """Refuse, in one line, every Trainer option, callback or hook override the fast path cannot honour."""
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
    if isinstance(callback, StopOnSignal):
        return None  # stops at the next group of batches
    hooks = [h for h in CALLBACK_HOOKS if is_overridden(h, callback, Callback)]
    if isinstance(callback, (StochasticWeightAveraging, GradientAccumulationScheduler, LearningRateFinder)):
        return "it needs automatic optimisation"
    return f"it overrides {', '.join(hooks)}" if hooks else None


def training_step(module: pl.LightningModule, group: list, batch_idx: int = 0) -> None:
    """One optimiser step per batch of a group, through Lightning's manual optimisation."""
    if not isinstance(group, list):
        raise GenreTorchError("a module fitted on the fast path (FastPath) takes grouped batches only: build a new one")
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
