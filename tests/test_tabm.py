"""TabM in the paper's setting: defaults, initialisation, and the same function as the authors' `tabm` package."""

from __future__ import annotations

import pytest
import torch

from genre_torch.core import models
from genre_torch.core.models.tabm import LinearBE


def linear_layers(net: torch.nn.Module) -> list[LinearBE]:
    return [m for m in net.body if isinstance(m, LinearBE)]


def test_defaults_are_the_papers() -> None:
    net = models.build("TabM", 17, 5)
    assert net.k == 32 and [m.weight.shape[1] for m in linear_layers(net)] == [512, 512, 512]
    assert net.body[1].__class__.__name__ == "ReLU" and net.body[2].p == 0.1
    embedded = models.build("TabM", 17, 5, embedding=True, n_numeric=11)
    assert [m.weight.shape[1] for m in linear_layers(embedded)] == [512, 512]  # 2 blocks with embeddings
    assert embedded.input.embed.weight.shape[0] == 11  # PLR with one linear layer per feature (not lite)


def test_initialisation_random_signs_first_then_ones_and_equal_member_biases() -> None:
    torch.manual_seed(0)
    first, *rest = linear_layers(models.build("TabM", 9, 3, k=6, hidden_dims=[16, 16, 16]))
    assert set(first.r.unique().tolist()) == {-1.0, 1.0}
    assert all(torch.equal(m.r, torch.ones_like(m.r)) for m in rest)
    for m in [first, *rest]:
        assert torch.equal(m.s, torch.ones_like(m.s)) and torch.equal(m.bias, m.bias[:1].expand_as(m.bias))


def test_with_embeddings_each_feature_gets_one_normal_scaling_per_member() -> None:
    torch.manual_seed(0)
    net = models.build("TabM", 7, 3, k=5, hidden_dims=[8], embedding=True, n_numeric=3, d_embedding=4)
    r = linear_layers(net)[0].r  # (k, 3 * 4 + 4 passed-through columns)
    assert r.shape == (5, 16)
    chunks = r[:, :12].reshape(5, 3, 4)
    assert torch.equal(chunks, chunks[..., :1].expand_as(chunks)) and chunks[..., 0].unique().numel() == 15
    assert r[:, 12:].unique().numel() == 20  # every other column its own value


def test_mini_scales_only_the_input_and_shares_the_rest() -> None:
    first, second = linear_layers(models.build("TabM", 5, 2, k=3, hidden_dims=[8, 8], mini=True))
    assert first.r is not None and second.r is None
    assert first.s is None and second.s is None and first.bias.shape == (8,)


def package_model(ours: torch.nn.Module, n: int, classes: int, arch: str, embedding: bool) -> torch.nn.Module:
    """The `tabm` package's TabM with our weights copied in."""
    tabm = pytest.importorskip("tabm")
    rtdl = pytest.importorskip("rtdl_num_embeddings")
    layers = linear_layers(ours)
    kwargs = {"k": ours.k, "n_blocks": len(layers), "d_block": layers[0].weight.shape[1], "dropout": 0.0}
    if embedding:
        embed = ours.input.embed
        d, f = embed.weight.shape[-1], embed.frequencies.shape[1]
        kwargs["num_embeddings"] = rtdl.PeriodicEmbeddings(n, d, n_frequencies=f, lite=False)
    theirs = tabm.TabM.make(n_num_features=n, d_out=classes, arch_type=arch, **kwargs)
    values = []
    if embedding:
        values += [embed.frequencies, embed.weight, embed.bias]
    for m in layers:
        values += [m.weight.T, m.r, m.s, m.bias] if arch == "tabm" else [m.weight.T, m.bias]
    values += [layers[0].r] if arch == "tabm-mini" else []
    values += [ours.head_weight, ours.head_bias]
    state = dict(zip(theirs.state_dict(), values, strict=True))
    theirs.load_state_dict(state)
    return theirs


@pytest.mark.parametrize("arch,embedding", [("tabm", False), ("tabm-mini", False), ("tabm", True)])
def test_the_same_function_as_the_tabm_package(arch: str, embedding: bool) -> None:
    torch.manual_seed(0)
    settings = {"k": 4, "hidden_dims": [32, 32], "dropout": 0.0, "mini": arch == "tabm-mini"}
    settings |= {"embedding": True, "d_embedding": 6, "n_frequencies": 5, "sigma": 1.0} if embedding else {}
    ours = models.build("TabM", 7, 3, **settings).eval()
    theirs = package_model(ours, 7, 3, arch, embedding).eval()
    x = torch.randn(64, 7)
    assert torch.allclose(ours.forward_members(x), theirs(x), atol=1e-5)


@pytest.mark.parametrize("embedding", [False, True])
def test_default_size_matches_the_package_defaults(embedding: bool) -> None:
    tabm = pytest.importorskip("tabm")
    rtdl = pytest.importorskip("rtdl_num_embeddings")
    extra = {"num_embeddings": rtdl.PeriodicEmbeddings(11, 16, n_frequencies=48, lite=False)} if embedding else {}
    theirs = tabm.TabM.make(n_num_features=11, d_out=10, **extra)
    ours = models.build("TabM", 11, 10, embedding=embedding)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
