"""A training killed with SIGKILL mid-epoch resumes from last.ckpt and ends like an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import torch

from genre_torch.cli import run_cli

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")
ARGS = [
    *("fit", "--config", CONFIG, "--trainer.max_epochs", "5", "--data.batch_size", "64"),
    *("--model.backbone.dropout", "0.2", "--early_stopping.patience", "100"),
    *("--model.batch_transform", "Mixup"),  # random draws of its own, restored from the checkpoint too
]
KILLER = """
import os, signal, sys, pytorch_lightning as pl
from genre_torch import cli

class Kill(pl.Callback):  # a per-step hook, so it works on the fast path too
    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.current_epoch == 3 and trainer.global_step == 3 * 7 + 2:  # mid-epoch: 7 steps an epoch
            os.kill(os.getpid(), signal.SIGKILL)

from genre_torch.core.training.lightning_cli import GenreCLI
original = GenreCLI.instantiate_trainer
def instantiate_trainer(self, **kwargs):
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), Kill()]
    return original(self, **kwargs)
GenreCLI.instantiate_trainer = instantiate_trainer
cli.run_cli(sys.argv[1:])
"""


@pytest.mark.slow
@pytest.mark.parametrize("path", [[], ["--data.batches_per_step", "3"]], ids=["standard", "fast"])
def test_sigkill_then_resume(data_env, warm, path: list[str]) -> None:
    args = [*ARGS, *path]
    proc = subprocess.run([warm["python"], "-c", KILLER, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    last = Path("checkpoints/music_genre/version_0/last.ckpt")
    assert torch.load(last, weights_only=True)["epoch"] == 2  # the last epoch completed before the kill
    assert not [p for p in last.parent.iterdir() if p.suffix != ".ckpt"]  # no temporary leftovers

    resumed = run_cli([*args, "--ckpt_path", str(last)])
    full = run_cli(args)
    assert resumed.trainer.logger.version == 0 and full.trainer.logger.version == 1
    a = torch.load(last, weights_only=True)
    b = torch.load("checkpoints/music_genre/version_1/last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 4 and a["global_step"] == b["global_step"] == 5 * 7
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key
    assert resumed.trainer.callback_metrics["test/acc"] == full.trainer.callback_metrics["test/acc"]
