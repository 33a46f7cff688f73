"""The worked examples of docs/extending.md: each is one file plus a config line, and each really takes effect."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genre_torch.cli import main, run_cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
FIT = ["fit", "--config", str(ROOT / "configs" / "music_genre.yaml"), "--trainer.max_epochs", "3"]
FIT += ["--trainer.enable_progress_bar", "false", "--data.batch_size", "64"]


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_the_guide_shows_the_example_files_as_they_are() -> None:
    guide = (ROOT / "docs" / "extending.md").read_text()
    for path in [*EXAMPLES.glob("*.py"), *EXAMPLES.glob("*.yaml")]:
        language = "python" if path.suffix == ".py" else "yaml"
        block = re.search(rf"```{language}\n# docs/examples/{path.name}\n(.*?)```", guide, re.S)
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


def test_sgd_with_nesterov_and_steplr_from_a_config(data_env) -> None:
    cli = run_cli([*FIT, "--config", str(EXAMPLES / "sgd_steplr.yaml"), "--lr_scheduler.step_size", "1"])
    opt = cli.trainer.optimizers[0]
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["nesterov"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**3)  # halved after each of the 3 epochs
    hparams = torch.load(cli.trainer.checkpoint_callback.best_model_path, weights_only=True)["hyper_parameters"]
    assert hparams["optimizer"]["class_path"].endswith("SGD") and hparams["lr_scheduler"]["class_path"].endswith(
        "StepLR"
    )
    assert float(cli.trainer.callback_metrics["test/acc"]) > 0.5


def test_a_metric_monitored_by_early_stopping_and_the_checkpoint(data_env) -> None:
    cli = run_cli([*FIT, "--config", str(EXAMPLES / "ece_monitor.yaml")])
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert cli.trainer.early_stopping_callback.monitor == cli.trainer.checkpoint_callback.monitor == "val/ece"
    assert "-val_ece" in best.name and {"test/ece", "test/top3_acc"} <= set(cli.trainer.callback_metrics)
    events = EventAccumulator(cli.trainer.log_dir).Reload()
    assert len(events.Scalars("val/ece")) >= 3


def test_a_subclassed_module(data_env) -> None:
    constant = ["--lr_scheduler", "null"]  # so that the resume below can run longer
    cli = run_cli([*FIT, *constant, "--model", "l1_classifier.L1Classifier", "--model.l1", "0.001"])
    assert type(cli.model).__name__ == "L1Classifier"
    assert len(EventAccumulator(cli.trainer.log_dir).Reload().Scalars("train/l1")) == 3  # its training_step ran
    best = cli.trainer.checkpoint_callback.best_model_path
    hparams = torch.load(best, weights_only=True)["hyper_parameters"]
    assert hparams["_class_path"] == "l1_classifier.L1Classifier" and hparams["l1"] == 0.001
    tested = run_cli(["test", "--ckpt_path", best])  # class, settings and dataset come from the checkpoint
    assert type(tested.model).__name__ == "L1Classifier" and tested.model.hparams.l1 == 0.001
    last = str(Path(best).parent / "last.ckpt")
    more = ["--model", "l1_classifier.L1Classifier", "--trainer.max_epochs", "4", *constant, "--ckpt_path", last]
    resumed = run_cli([*FIT, *more])
    assert resumed.trainer.current_epoch == 4 and type(resumed.model).__name__ == "L1Classifier"
    rows = str(data_env / "music_genre.csv")
    best = resumed.trainer.checkpoint_callback.best_model_path
    main(["predict", "--ckpt_path", best, "--input", rows, "--output", "p.csv"])  # scored by its backbone
    main(["export", "--ckpt_path", best, "--format", "onnx", "--output", "m.onnx"])
    assert len(Path("p.csv").read_text().splitlines()) > 100 and Path("m.onnx").stat().st_size > 0


def test_a_backbone_with_its_own_parameter_groups(data_env) -> None:
    adamw = ["--optimizer", "AdamW", "--optimizer.lr", "0.001", "--optimizer.weight_decay", "0.01"]
    cli = run_cli([*FIT, *adamw, "--lr_scheduler", "null", "--model.backbone", "head_lr_mlp.HeadLRMLP"])
    groups = cli.trainer.optimizers[0].param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.01, 0.001])
    assert [g["weight_decay"] for g in groups] == pytest.approx([0.01, 0.01, 0.0])
    assert float(cli.trainer.callback_metrics["test/acc"]) > 0.5
