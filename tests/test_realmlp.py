"""RealMLP's switches each do what they say: smooth clipping, PBLD, front scale, NTK, data init, LR groups, coslog4."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from genre_torch.cli import run_cli
from genre_torch.core import models
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.models.realmlp import FrontScale, ScaledLinear, smooth_clip
from genre_torch.core.module import GenreClassifier

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PLAIN = dict(embedding=False, front_scale=False, data_init=False)


def test_smooth_clip_is_bounded_monotone_and_near_identity_at_zero() -> None:
    x = torch.linspace(-100, 100, 20_001, dtype=torch.float64)
    y = smooth_clip(x)
    assert y.abs().max() < 3 and (y.diff() > 0).all()
    assert torch.allclose(smooth_clip(torch.tensor([0.0, 0.01])), torch.tensor([0.0, 0.01]), atol=1e-6)


@pytest.mark.parametrize("clip", [True, False])
def test_smooth_clipping_applies_to_the_numeric_columns_only(clip: bool) -> None:
    net = models.build("RealMLP", 5, 3, n_numeric=3, smooth_clip=clip, **PLAIN)
    x = torch.tensor([[100.0, -50.0, 0.5, 7.0, -9.0]])
    out = net.input(x)
    assert torch.equal(out[:, 3:], x[:, 3:])  # one-hot / indicator columns pass through
    expected = smooth_clip(x[:, :3]) if clip else x[:, :3]
    assert torch.allclose(out[:, :3], expected) and (out[:, :2].abs() < 3).all() == clip


def test_pbld_embeds_each_numeric_feature_and_keeps_its_value() -> None:
    net = models.build("RealMLP", 6, 3, n_numeric=2, d_embedding=4, n_frequencies=5, smooth_clip=False)
    x = torch.randn(7, 6)
    out = net.input(x)
    assert net.input.out_features == out.shape[1] == 2 * 4 + 4
    assert torch.equal(out[:, [3, 7]], x[:, :2])  # densenet: the last of each feature's 4 values is the value
    assert torch.equal(out[:, 8:], x[:, 2:])
    with pytest.raises(GenreTorchError, match="d_embedding must be at least 2"):
        models.build("RealMLP", 6, 3, d_embedding=1)


@pytest.mark.parametrize("switch", ["front_scale", "parametric_activation", "embedding"])
def test_each_part_can_be_switched_off(switch: str) -> None:
    on, off = (models.build("RealMLP", 6, 3, hidden_dims=[8], **{switch: value}) for value in (True, False))
    if switch == "front_scale":
        assert isinstance(on.scale, FrontScale) and off.scale is None
        assert torch.equal(on.scale.weight, torch.ones(6 * 4))  # starts as the identity
    elif switch == "parametric_activation":
        act_on, act_off = (net.blocks[0][1] for net in (on, off))
        assert torch.equal(act_on.weight, torch.ones(8)) and act_off.weight is None
    else:
        assert on.input.embedding is not None and off.input.embedding is None
    assert sum(p.numel() for p in on.parameters()) > sum(p.numel() for p in off.parameters())


def test_ntk_parametrisation_scales_outputs_by_the_fan_in() -> None:
    torch.manual_seed(0)
    ntk, plain = ScaledLinear(400, 300, ntk=True), ScaledLinear(400, 300, ntk=False)
    assert ntk.multiplier == 1 / 20 and plain.multiplier == 1.0
    assert abs(float(ntk.weight.detach().std()) - 1) < 0.01 and float(plain.weight.detach().abs().max()) <= 1 / 20
    x = torch.randn(64, 400)
    assert torch.allclose(ntk(x), x @ ntk.weight / 20 + ntk.bias, atol=1e-5)


def test_data_init_runs_once_on_the_first_training_batch() -> None:
    torch.manual_seed(0)
    net = models.build("RealMLP", 6, 3, n_numeric=4, hidden_dims=[32, 16])
    x = torch.randn(256, 6) * 5
    before = [p.clone() for p in net.parameters()]
    net.eval()(x)  # evaluation never initialises
    assert not bool(net.initialized) and all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    net.train()
    pre = []
    hooks = [b[0].register_forward_hook(lambda m, i, o: pre.append(o.detach())) for b in net.blocks]
    net(x)
    for h in hooks:
        h.remove()
    assert bool(net.initialized)
    for out in pre[-2:]:  # the pass with grad after the initialising pass: unit std, biases among the data
        assert torch.allclose(out.std(0, correction=0), torch.ones(out.shape[1]), atol=0.3)
        assert ((out > 0).float().mean(0) < 1).all() and ((out > 0).float().mean(0) > 0).all()
    after = [p.clone() for p in net.parameters()]
    net(x * 2)  # a later batch does not initialise again
    assert all(torch.equal(a, b) for a, b in zip(after, net.parameters(), strict=True))
    reloaded = models.build("RealMLP", 6, 3, n_numeric=4, hidden_dims=[32, 16])
    reloaded.load_state_dict(net.state_dict())
    reloaded.train()(x)  # restored from a checkpoint: initialised already
    assert all(torch.equal(a, b) for a, b in zip(after, reloaded.parameters(), strict=True))


def test_without_data_init_the_weights_stay_as_built() -> None:
    net = models.build("RealMLP", 6, 3, data_init=False, dropout=0.0)
    before = [p.clone() for p in net.parameters()]
    net.train()(torch.randn(32, 6))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_parameter_groups_carry_the_learning_rate_factors_into_the_optimiser() -> None:
    backbone = {"class_path": "RealMLP", "init_args": {"hidden_dims": [8], "betas": [0.9, 0.95]}}
    model = GenreClassifier(6, 3, num_numeric=4, backbone=backbone, optimizer="adamw", lr=0.04, weight_decay=0.02)
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


class LRRecorder(pl.Callback):
    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])


def test_coslog4_schedule_restarts_four_times_and_keeps_the_group_factors(data_env) -> None:
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)  # 16 steps an epoch
    backbone = {"class_path": "RealMLP", "init_args": {"hidden_dims": [8]}}
    model = GenreClassifier(6, 3, backbone=backbone, optimizer="adamw", lr=0.04, scheduler="coslog4")
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


def _ddp_worker(rank: int, port: int, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(rank)  # each rank builds different weights and sees a different first batch
    net = models.build("RealMLP", 6, 3, hidden_dims=[8])
    net.train()(torch.randn(32, 6) + rank)
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(2)]
    torch.distributed.all_gather(gathered, flat)
    if rank == 0:
        torch.save(gathered, out)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_data_init_under_ddp_leaves_every_rank_with_rank_zeros_weights(tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "weights.pt")
    torch.multiprocessing.spawn(_ddp_worker, args=(port, out), nprocs=2)
    rank0, rank1 = torch.load(out)
    assert torch.equal(rank0, rank1)
