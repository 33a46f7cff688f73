"""The Provenance callback: the run's provenance record (core/training/provenance.py) in every checkpoint it saves, in
provenance.yaml beside LightningCLI's config.yaml, and in TensorBoard's Text tab."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger

from genre_torch.core.training.provenance import KEY, collect, data_file

FILE = "provenance.yaml"


def device_name(device: torch.device) -> str:
    """A readable name of the device a run trains on (the GPU's model, else the CPU's architecture)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.machine() or 'unknown'})"


class Provenance(Callback):
    """Records which code, data and machine made a run: in every checkpoint, provenance.yaml and TensorBoard."""

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Collect the record once per trainer (the data file is hashed once, then cached), then publish it."""
        if self.record is not None:  # the final validation and test of a fit: the same run
            return
        datamodule = trainer.datamodule
        seed = os.environ.get("PL_GLOBAL_SEED")  # set by seed_everything (LightningCLI's --seed_everything)
        log_dir = trainer.logger.log_dir if trainer.logger is not None else None
        config = Path(log_dir) / "config.yaml" if log_dir else None
        self.record = collect(
            data_file(datamodule) if datamodule is not None else None,
            seed=int(seed) if seed is not None else None,
            device=device_name(trainer.strategy.root_device),
            devices=trainer.num_devices * trainer.num_nodes,
            precision=str(trainer.precision),
            config=config.read_text() if config is not None and config.is_file() else None,
        )
        if trainer.is_global_zero:
            self.publish(trainer, log_dir)

    def publish(self, trainer: pl.Trainer, log_dir: str | None) -> None:
        """provenance.yaml in the run folder and the record in TensorBoard's Text tab."""
        text = yaml.safe_dump(self.record, sort_keys=False, width=120)
        if log_dir:
            with contextlib.suppress(OSError):  # the run's own files report a read-only folder
                Path(log_dir).mkdir(parents=True, exist_ok=True)
                (Path(log_dir) / FILE).write_text(text)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):  # markdown: an indented block keeps the YAML as it is
                logger.experiment.add_text(KEY, "\n".join("    " + line for line in text.splitlines()), 0)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Every checkpoint carries the record under its top-level key 'provenance'."""
        if self.record is not None:
            checkpoint[KEY] = self.record
