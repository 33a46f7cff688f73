"""The worked examples of docs/extending.md: each is one file plus a config line, and each really takes effect."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genre_torch.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
FIT = ["fit", "--config", str(ROOT / "configs" / "music_genre.yaml"), "--trainer.max_epochs", "3"]
FIT += ["--trainer.enable_progress_bar", "false", "--data.batch_size", "64"]


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_the_guide_shows_the_example_files_as_they_are() -> None:
    guide = (ROOT / "docs" / "extending.md").read_text()
    for path in EXAMPLES.glob("*.py"):
        block = re.search(rf"```python\n# docs/examples/{path.name}\n(.*?)```", guide, re.S)
        assert block and block.group(1) == path.read_text(), path.name


def test_a_new_architecture(data_env) -> None:
    cli = run_cli([*FIT, "--model.backbone", "gated_mlp.GatedMLP", "--model.backbone.width", "32"])
    assert type(cli.model.backbone).__name__ == "GatedMLP" and cli.model.backbone.layers[0].out_features == 64
    assert float(cli.trainer.callback_metrics["test/acc"]) > 0.5  # 4 synthetic genres: chance is 0.25
    assert list(Path(cli.trainer.log_dir).rglob("tensors.tsv"))  # its embed() reached the projector


def test_a_new_loss_is_the_validation_loss_too(data_env) -> None:
    cli = run_cli([*FIT, "--model.criterion", "poly_loss.PolyLoss", "--model.criterion.epsilon", "2.0"])
    x, y = cli.datamodule.tensors["val"]
    model = cli.model.eval()
    with torch.no_grad():
        poly = model.criterion(model(x), y)
    assert type(model.criterion).__name__ == "PolyLoss"
    assert torch.allclose(torch.tensor(cli.final_metrics["val/loss"]), poly, atol=1e-4)  # the final model's


def test_a_batch_transform(data_env) -> None:
    cli = run_cli([*FIT[1:], "--model.batch_transform", "feature_noise.NumericNoise"], run=False)
    calls = []
    cli.model.batch_transform.register_forward_hook(lambda module, inputs, out: calls.append(inputs[0].shape))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert len(calls) == cli.trainer.global_step == 3 * 7  # once per training batch, never in validation


def test_a_callback_using_on_before_optimizer_step(data_env) -> None:
    cli = run_cli([*FIT, "--trainer.callbacks+=grad_norm.GradNormLogger"])
    events = EventAccumulator(cli.trainer.log_dir, size_guidance={"scalars": 0}).Reload()
    norms = events.Scalars("train/grad_norm")
    assert len(norms) == cli.trainer.global_step == 3 * 7 and all(e.value > 0 for e in norms)


def test_examples_are_importable_only_through_the_path() -> None:
    assert str(EXAMPLES) in sys.path  # the fixture, as PYTHONPATH=docs/examples does for a user
