"""A training killed with SIGKILL mid-epoch resumes from last.ckpt and ends like an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genre_torch.cli import run_cli

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")
ARGS = [
    "fit",
    "--config",
    CONFIG,
    "--trainer.max_epochs",
    "5",
    "--data.batch_size",
    "64",
    "--data.batches_per_step",
    "2",  # 7 batches of 64 per epoch: 4 training_step calls, so a kill can land between them
    "--model.arch_args.dropout",
    "0.2",
    "--early_stopping.patience",
    "100",
]
KILLER = f"""
import os, signal, pytorch_lightning as pl
from genre_torch import cli

class Kill(pl.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.current_epoch == 3 and args[-1] == 1:  # batch_idx: mid-epoch
            os.kill(os.getpid(), signal.SIGKILL)

original = cli.GenreCLI.instantiate_trainer
def instantiate_trainer(self, **kwargs):
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), Kill()]
    return original(self, **kwargs)
cli.GenreCLI.instantiate_trainer = instantiate_trainer
cli.run_cli({ARGS!r})
"""


@pytest.mark.slow
def test_sigkill_then_resume(data_env) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLER], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    last = Path("checkpoints/music_genre/version_0/last.ckpt")
    assert torch.load(last, weights_only=True)["epoch"] <= 2  # the newest improvement before the kill
    assert not [p for p in last.parent.iterdir() if p.suffix != ".ckpt"]  # no temporary leftovers

    resumed = run_cli([*ARGS, "--ckpt_path", str(last)])
    full = run_cli(ARGS)
    assert resumed.trainer.logger.version == 0 and full.trainer.logger.version == 1
    a = torch.load(last, weights_only=True)
    b = torch.load("checkpoints/music_genre/version_1/last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key
    assert resumed.trainer.callback_metrics["test/acc"] == full.trainer.callback_metrics["test/acc"]
