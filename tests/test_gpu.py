"""The GPU path: data resident on the device, fp32 preset and bf16-mixed, CPU parity. Skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genre_torch.cli import run_cli
from genre_torch.tools.predict import load_predictor

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
# 600 synthetic rows, 4 genres (chance 0.25): 30 epochs of the music_genre config reach 0.87 on the CPU
FIT = ["fit", "--config", str(CONFIGS / "music_genre.yaml"), "--trainer.max_epochs", "30"]


def test_bf16_fit_on_gpu_keeps_data_on_device(data_env) -> None:
    cli = run_cli([*FIT, "--config", str(CONFIGS / "presets" / "gpu.yaml"), "--trainer.precision", "bf16-mixed"])
    x, y = cli.datamodule.tensors["train"]
    assert x.is_cuda and y.is_cuda
    assert cli.trainer.precision == "bf16-mixed"
    assert float(cli.trainer.callback_metrics["test/acc"]) > 0.7


def test_gpu_fp32_matches_cpu_and_its_checkpoint_predicts_on_cpu(data_env) -> None:
    cpu = run_cli([*FIT, "--trainer.accelerator", "cpu"])
    gpu = run_cli([*FIT, "--config", str(CONFIGS / "presets" / "gpu.yaml")])
    assert gpu.trainer.precision == "32-true"
    cpu_acc, gpu_acc = (float(c.trainer.callback_metrics["test/acc"]) for c in (cpu, gpu))
    assert gpu_acc > 0.7 and abs(gpu_acc - cpu_acc) < 0.1  # the shuffles differ (drawn on each device)
    predictor = load_predictor(gpu.trainer.checkpoint_callback.best_model_path)
    assert next(predictor.backbone.parameters()).device.type == "cpu"
    table = predictor.predict(gpu.datamodule.frame.head(50))
    assert table["predicted_genre"].isin(predictor.classes).all()


def test_search_workers_forked_from_the_forkserver_train_on_the_gpu(data_env, tmp_path) -> None:
    """Workers fork from a server that imported torch and Lightning: that import must leave CUDA uninitialised,
    or every forked worker fails its first CUDA call."""
    optuna = pytest.importorskip("optuna")
    from genre_torch.cli import main

    space = tmp_path / "seeds.yaml"
    space.write_text("seed_everything: {choices: [0, 1]}\n")
    main(["sweep", "--config", str(CONFIGS / "music_genre.yaml"), "--config", str(CONFIGS / "presets" / "gpu.yaml"),
          "--space", str(space), "--workers", "2", "--trainer.max_epochs", "2", "--timeout", "300"])  # fmt: skip
    study = optuna.load_study(
        study_name="music_genre-gpu-seeds", storage="sqlite:///runs/music_genre-gpu-seeds/study.db"
    )
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
