"""One search trial: `genre-torch fit` without its test, reporting validation accuracy to an Optuna trial."""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import yaml
from torch import nn

from genre_torch.cli import run_cli
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training import signals
from genre_torch.core.training.lightning_cli import log_final, run_checkpoint
from genre_torch.tools.search_space import SearchSpace, option_args

# a trial keeps no checkpoint (the best config is refitted with `genre-torch fit`), and N workers share one
# terminal; these apply to trials only, never to the config written for the best trial
TRIAL_ONLY = [
    "--checkpoint.save_top_k", "0", "--checkpoint.save_last", "false",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]  # fmt: skip


class Surplus(Exception):
    """A trial created past the end of the study (its queue emptied, or enough trials exist): not run."""


class ReportToTrial(pl.Callback):
    """Reports val/acc to the trial after every validation epoch, prunes, and keeps the best epoch's metrics.

    The best epoch is the one the checkpoint callback keeps (its monitor and mode: val/loss by default),
    so a trial's value is the validation accuracy that `genre-torch fit` reports for the same config.
    """

    def __init__(self, trial: optuna.Trial, prune: bool) -> None:
        self.trial, self.prune, self.pruned = trial, prune, False
        self.best: dict[str, float] = {}
        self.best_monitor, self.epochs = math.nan, 0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if trainer.sanity_checking or "val/acc" not in metrics:
            return
        acc, epoch = float(metrics["val/acc"]), trainer.current_epoch
        ckpt = run_checkpoint(trainer)
        monitor, mode = (ckpt.monitor, ckpt.mode) if ckpt is not None and ckpt.monitor else ("val/acc", "max")
        current = float(metrics.get(monitor, math.nan))
        if math.isnan(current):  # as ModelCheckpoint: a NaN is the worst value
            current = -math.inf if mode == "max" else math.inf
        if not self.best or (current > self.best_monitor if mode == "max" else current < self.best_monitor):
            self.best_monitor = current
            self.best = {"val_acc": acc, "val_loss": float(metrics.get("val/loss", math.nan)), "best_epoch": epoch}
        self.epochs = epoch + 1
        self.trial.report(acc, step=epoch)
        if self.prune and self.trial.should_prune():
            self.pruned, trainer.should_stop = True, True


def check_surplus(trial: optuna.Trial, trials: int | None) -> None:
    """Raise Surplus for a grid trial that is not a queued cell, or a trial beyond the study's `trials`.

    Trial numbers are given out atomically by the storage, so counting the live trials numbered below this
    one decides, the same way in every worker, which trials are the study's first `trials`.
    """
    study, reason = trial.study, None
    if trials is None:  # a grid: only the queued cells (and their retries) run
        reason = None if "cell" in trial.user_attrs else "the grid has no cell left"
    else:
        live = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
        live += (optuna.trial.TrialState.WAITING,)
        before = [t for t in study.get_trials(deepcopy=False, states=live) if t.number < trial.number]
        reason = f"the study already has {trials} trials" if len(before) >= trials else None
    if reason:
        trial.set_user_attr("surplus", True)
        raise Surplus(reason)


def run_trial(trial: optuna.Trial, fit_args: list[str], space: SearchSpace, folder: Path, trials: int | None) -> float:
    """Fit the trial's config with validation only (the test split never reaches a model); its best val/acc."""
    trial.set_user_attr("worker", os.getpid())  # begun: its heartbeat thread runs (search_storage)
    signals.defer(False)  # a signal held during Optuna's ask ends the trial here, once it beats: stale, retried
    signals.check()
    check_surplus(trial, trials)
    values = space.suggest(trial)
    run_dir = folder / f"trial_{trial.number:05d}"
    start = time.perf_counter()
    folders = ["--runs_dir", str(run_dir), "--checkpoints_dir", str(run_dir)]
    cli = run_cli([*fit_args, *option_args(values), *folders, *TRIAL_ONLY], run=False)
    report = ReportToTrial(trial, prune=trials is not None)
    cli.trainer.callbacks.append(report)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if not report.best:
        raise GenreTorchError("a trial ran no validation epoch; check --trainer.limit_val_batches / max_epochs")
    attrs = {**report.best, "epochs": report.epochs, "seed": cli.config["seed_everything"]}
    attrs["seconds"] = round(time.perf_counter() - start, 3)
    attrs["dense_flops"] = dense_flops(cli.trainer, cli.model, cli.datamodule, report.epochs)
    logger = cli.trainer.logger
    if logger is not None:  # the study in TensorBoard's HParams tab: this trial's options and final metrics
        attrs["run"] = str(logger.log_dir)
        hparams = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in values.items()}
        metrics = {f"hp/{k}": attrs[k] for k in ("val_acc", "val_loss", "best_epoch", "epochs")}
        log_final(cli.trainer, {**hparams, "trial": trial.number}, {**metrics, "hp/pruned": int(report.pruned)})
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if report.pruned:
        raise optuna.TrialPruned(f"pruned after epoch {report.epochs - 1}")
    return report.best["val_acc"]


def check_options(fit_args: list[str], cells: list[dict[str, Any]], source: str) -> None:
    """Build data, model and trainer of every cell (no run, no folder): a bad value fails before any trial."""
    for values in cells:
        try:
            run_cli([*fit_args, *option_args(values), "--trainer.logger", "false", *TRIAL_ONLY], run=False)
        except GenreTorchError as e:
            raise GenreTorchError(f"{source}: the options {option_args(values)} fail: {e}") from None


def dense_flops(trainer: pl.Trainer, model: nn.Module, datamodule: Any, epochs: int) -> float:
    """A floor on a training's arithmetic: the multiply-adds of its nn.Linear layers alone, per row seen.

    Forward (2 FLOPs per multiply-add) on the training and validation rows, plus the weight gradients (2 more)
    on training rows; input gradients, activations, the loss and the optimiser are left out, so the true count
    is higher. Rows seen: each optimiser step's batch (no more than whole epochs), and each validation epoch's
    batches (no more than the split). 0 when the split sizes are unknown (data streamed from a folder).
    """
    macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    splits = getattr(datamodule, "splits", None) or {}
    train = min(epochs * len(splits.get("train", ())), trainer.global_step * datamodule.batch_size)
    val_batches = sum(trainer.num_val_batches) if trainer.num_val_batches else 0
    val = epochs * min(len(splits.get("val", ())), val_batches * datamodule.eval_batch_size)
    return float(macs * (4 * train + 2 * val))


def resolved_config(fit_args: list[str]) -> dict[str, Any]:
    """The complete config of `genre-torch fit` with these arguments (LightningCLI's --print_config).

    A bad option becomes a one-line GenreTorchError instead of jsonargparse's usage text.
    """
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run_cli([*fit_args, "--print_config"], run=False)
    except GenreTorchError as e:  # GenreCLI's parser reports errors as one line
        raise GenreTorchError(f"fit options: {e}") from None
    except SystemExit as e:
        if e.code not in (0, None):
            lines = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
            raise GenreTorchError(f"fit options: {lines[-1][7:] if lines else err.getvalue().strip()}") from None
    config = yaml.safe_load(out.getvalue())
    if not isinstance(config, dict):
        raise GenreTorchError(f"fit options {fit_args} did not resolve to a config")
    return config
