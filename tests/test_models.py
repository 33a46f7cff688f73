"""Every registered architecture builds, returns logits of the right shape and trains."""

from __future__ import annotations

import pytest
import torch

from genre_torch.core import models
from genre_torch.core.errors import GenreTorchError


@pytest.mark.parametrize("name", models.names())
def test_architecture_shape_and_backward(name: str) -> None:
    net = models.build(name, 17, 5)
    x = torch.randn(8, 17)
    out = net(x)
    assert out.shape == (8, 5)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_mlp_settings(activation: str, norm: str | None) -> None:
    net = models.build("mlp", 4, 3, hidden_dims=[8, 6], activation=activation, dropout=0.1, norm=norm)
    assert net(torch.randn(5, 4)).shape == (5, 3)
    assert [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)] == [8, 6, 3]


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(GenreTorchError, match="known architectures: .*mlp"):
        models.build("resnet9000", 4, 3)
    with pytest.raises(GenreTorchError, match="known activations: relu, leaky_relu, tanh, sigmoid, gelu"):
        models.build("mlp", 4, 3, activation="swishy")
    with pytest.raises(GenreTorchError, match="unknown setting.*widths.*hidden_dims"):
        models.build("mlp", 4, 3, widths=[3])


def test_register_adds_an_architecture() -> None:
    @models.register("_tiny_test_arch")
    class Tiny(torch.nn.Linear):
        pass

    try:
        assert isinstance(models.build("_tiny_test_arch", 3, 2), Tiny)
    finally:
        models._REGISTRY.pop("_tiny_test_arch")
