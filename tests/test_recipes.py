"""Training recipes: backbone parameter groups in the optimiser, the coslog4 schedule, the RealMLP and TabM configs."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import onnxruntime as ort
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from genre_torch import load_predictor
from genre_torch.cli import main, run_cli
from genre_torch.core import models
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training import schedules
from genre_torch.core.training.module import GenreClassifier
from genre_torch.tools.export import raw_matrix

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_parameter_groups_carry_the_learning_rate_factors_into_the_optimiser() -> None:
    backbone = {"class_path": "RealMLP", "init_args": {"hidden_dims": [8], "betas": [0.9, 0.95]}}
    adamw = functools.partial(torch.optim.AdamW, lr=0.04, weight_decay=0.02)
    model = GenreClassifier(6, 3, num_numeric=4, backbone=backbone, optimizer=adamw)
    opt = model.configure_optimizers()
    net = model.backbone
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    expect = [
        (net.scale.weight, 0.04 * 6, 0.02 * 6),
        (net.input.embedding.frequencies, 0.04 * 0.1, 0.02 * 0.1),
        (net.blocks[0][1].weight, 0.04 * 0.1, 0.02 * 0.1),  # parametric activation
        (net.blocks[0][0].bias, 0.04 * 0.1, 0.0),  # biases: no weight decay
        (net.blocks[0][0].weight, 0.04, 0.02),
        (net.head.weight, 0.04, 0.02),
    ]
    for param, lr, wd in expect:
        group = group_of[id(param)]
        assert math.isclose(group["lr"], lr) and math.isclose(group["weight_decay"], wd)
        assert tuple(group["betas"]) == (0.9, 0.95)
    assert sorted(group_of) == sorted(id(p) for p in model.parameters())


def test_a_backbone_that_misses_a_parameter_in_its_groups_is_refused() -> None:
    class Partial(models.Backbone):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def parameter_groups(self) -> list[dict]:
            return [{"params": self.a.parameters(), "lr_factor": 2.0}]

    with pytest.raises(GenreTorchError, match="must list every parameter of the backbone exactly once"):
        models.optimizer_groups(Partial(), 1e-3, 0.0)
    groups = models.optimizer_groups(models.build("MLP", 2, 2), 1e-3, 0.1)  # no declaration: one group
    assert len(groups) == 1 and groups[0]["lr"] == 1e-3 and groups[0]["weight_decay"] == 0.1


@pytest.mark.parametrize("config", ["music_genre_audio_realmlp.yaml", "music_genre_audio_tabm.yaml"])
def test_recipe_configs_train_alike_on_the_standard_and_the_fast_path(data_env, config: str) -> None:
    small = ["--trainer.max_epochs", "2", "--data.batch_size", "64", "--trainer.enable_progress_bar", "false"]
    small += ["--model.backbone.hidden_dims", "[16, 16]"] + (["--model.backbone.k", "4"] if "tabm" in config else [])
    runs = []
    for path in ([], ["--data.batches_per_step", "3"]):
        cli = run_cli(["--config", str(CONFIGS / config), *small, *path], run=False)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        runs.append(cli.model.state_dict())
    standard, fast = runs
    assert all(torch.allclose(value, fast[key], atol=1e-5) for key, value in standard.items())


def test_a_trained_realmlp_checkpoint_predicts_and_exports_alike(data_env, tmp_path) -> None:
    small = ["--trainer.max_epochs", "2", "--data.batch_size", "64", "--model.backbone.hidden_dims", "[16, 16]"]
    cli = run_cli(["fit", "--config", str(CONFIGS / "music_genre_audio_realmlp.yaml"), *small])
    best = cli.trainer.checkpoint_callback.best_model_path
    predictor = load_predictor(best)
    assert bool(predictor.backbone.initialized)  # reloaded initialised: training would not re-initialise
    cli.model.load_state_dict(torch.load(best, weights_only=True)["state_dict"])
    x = cli.datamodule.tensors["test"][0].cpu()
    with torch.no_grad():
        expected = cli.model.cpu().eval()(x).softmax(-1)
        assert torch.allclose(predictor.backbone(x).softmax(-1), expected, atol=1e-6)
    main(["export", "--ckpt_path", best, "--format", "onnx", "--output", str(tmp_path / "m.onnx")])
    rows = cli.datamodule.frame.iloc[cli.datamodule.splits["test"]]
    features = raw_matrix(rows, json.loads((tmp_path / "m.json").read_text()))
    onnx = ort.InferenceSession(str(tmp_path / "m.onnx")).run(["probabilities"], {"features": features})[0]
    assert abs(onnx - predictor._probabilities(rows)).max() <= 1e-5


class LRRecorder(pl.Callback):
    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])


def test_coslog4_schedule_restarts_four_times_and_keeps_the_group_factors(data_env) -> None:
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)  # 16 steps an epoch
    backbone = {"class_path": "RealMLP", "init_args": {"hidden_dims": [8]}}
    adamw = functools.partial(torch.optim.AdamW, lr=0.04)
    model = GenreClassifier(6, 3, backbone=backbone, optimizer=adamw, lr_scheduler=schedules.CosLog4)
    recorder = LRRecorder()
    trainer = pl.Trainer(max_epochs=15, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.callbacks.append(recorder)
    trainer.fit(model, loader)
    steps = 15 * 16
    base = [g["initial_lr"] for g in trainer.optimizers[0].param_groups]
    for step, lrs in enumerate(recorder.lrs):
        factor = 0.5 * (1 - math.cos(2 * math.pi * math.log2(1 + 15 * step / steps)))
        assert all(math.isclose(lr, b * factor, abs_tol=1e-9) for lr, b in zip(lrs, base, strict=True))
    zeros = [s for s in (16, 48, 112) if recorder.lrs[s][0] < 1e-9]  # t = 1/15, 3/15, 7/15: the restarts
    assert zeros == [16, 48, 112] and max(r[0] for r in recorder.lrs) > 0.99 * base[0]


def test_the_default_optimiser_is_named_in_the_hparams_and_its_lr_can_be_set() -> None:
    model = GenreClassifier(6, 3)  # from Python, without an optimiser: Adam at torch's default lr
    assert model.hparams.optimizer["class_path"].endswith(".Adam") and model.lr == 1e-3
    model.lr = 0.02  # as LearningRateFinder sets it
    assert model.hparams.optimizer["init_args"]["lr"] == 0.02
    assert model.configure_optimizers().param_groups[0]["lr"] == 0.02
