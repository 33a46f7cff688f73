"""The GPU path: data resident on the device, bf16-mixed preset. Skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genre_torch.cli import run_cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_fit_on_gpu_keeps_data_on_device(data_env) -> None:
    cli = run_cli(
        [
            "fit",
            "--config",
            str(CONFIGS / "music_genre.yaml"),
            "--config",
            str(CONFIGS / "presets" / "gpu.yaml"),
            "--trainer.max_epochs",
            "2",
        ]
    )
    x, y = cli.datamodule.tensors["train"]
    assert x.is_cuda and y.is_cuda
    assert cli.trainer.precision == "bf16-mixed"
    assert float(cli.trainer.callback_metrics["test/acc"]) > 0.5
