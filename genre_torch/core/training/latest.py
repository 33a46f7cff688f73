"""last.ckpt after every completed epoch, so a resumed run loses no epoch and keeps the files an uninterrupted one has.

Lightning's `save_last=True` copies the newest checkpoint written, which with a monitor is only the best one: a
run killed after epochs that did not improve resumed from an older epoch and replayed them (TensorBoard then showed
their points twice). GenreCLI turns the run checkpoint's save_last into this callback.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint


class LatestCheckpoint(ModelCheckpoint):
    """Writes `last.ckpt` in the run's checkpoint folder at the end of every epoch, over the previous one."""

    def __init__(self, run: ModelCheckpoint) -> None:
        """run: the run's best-model checkpoint, whose folder this shares and whose stray files a resume removes."""
        last = self.CHECKPOINT_NAME_LAST
        super().__init__(run.dirpath, last, monitor=None, save_top_k=1, enable_version_counter=False)
        self.run = run

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """On resume, remove best-model files the run's restored state does not know (written after the last.ckpt
        the run resumed from, before it was killed): the folder then holds what an uninterrupted run keeps."""
        if not trainer.ckpt_path:
            return
        if any(isinstance(c, EarlyStopping) and c.stopped_epoch > 0 for c in trainer.callbacks):
            trainer.should_stop = True  # the run had stopped early: its last.ckpt is final, nothing is left to train
        if not trainer.is_global_zero or self.run.save_top_k < 0 or not self.run.dirpath:
            return
        prefix = (self.run.filename or "").split("{", 1)[0]
        known = {Path(p).name for p in self.run.best_k_models} | {Path(trainer.ckpt_path).name}
        for path in Path(self.run.dirpath).glob(f"{prefix}*{self.FILE_EXTENSION}"):
            if prefix and path.name not in known and path.name != self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION:
                with contextlib.suppress(OSError):
                    path.unlink()
