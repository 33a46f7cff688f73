"""EpochLine: one line per epoch when no progress bar is drawn (logs, CI, pipes)."""

from __future__ import annotations

import time

import pytorch_lightning as pl

SHOWN = ("train/loss", "train/acc", "val/loss", "val/acc")


class EpochLine(pl.Callback):
    """Prints `epoch 3/200  train/loss 1.234 ... (0.8 s)` after each training epoch, on rank 0."""

    def __init__(self) -> None:
        self.start: float | None = None  # set when this process starts an epoch (a resumed run starts later)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print(trainer, trainer.current_epoch - 1)  # train/* are logged after the callbacks' epoch end
        self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print(trainer, trainer.current_epoch - 1)

    def _print(self, trainer: pl.Trainer, epoch: int) -> None:
        if not trainer.is_global_zero or self.start is None:
            return
        metrics = trainer.callback_metrics
        monitor = getattr(trainer.early_stopping_callback, "monitor", None)  # the metric choosing the checkpoint
        shown = [*SHOWN, *([monitor] if monitor and monitor not in SHOWN else [])]
        values = "  ".join(f"{k} {float(metrics[k]):.4f}" for k in shown if k in metrics)
        limit = f"/{trainer.max_epochs}" if trainer.max_epochs not in (None, -1) else ""
        print(f"epoch {epoch + 1}{limit}  {values}  ({time.perf_counter() - self.start:.1f} s)", flush=True)
