"""RealMLP's switches do what they say: smooth clipping, PBLD, front scale, NTK, parametric activation, data init."""

from __future__ import annotations

import pytest
import torch

from genre_torch.core import models
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.models.realmlp import FrontScale, ScaledLinear, smooth_clip

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
