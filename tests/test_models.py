"""Every architecture builds, follows the Backbone protocol (embed, forward_members, n_numeric) and trains."""

from __future__ import annotations

import functools
import gc
import inspect

import pytest
import torch

from genre_torch.core import models
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training.module import GenreClassifier


@pytest.mark.parametrize("name", models.names())
def test_architecture_follows_the_protocol(name: str) -> None:
    torch.manual_seed(0)
    net = models.build(name, 17, 5).eval()
    x = torch.randn(8, 17)
    out = net(x)
    assert out.shape == (8, 5) and out.isfinite().all()
    if hasattr(net, "embed"):  # the projector's representation: one vector per song
        emb = net.embed(x)
        assert emb.dim() == 2 and emb.shape[0] == 8
    if hasattr(net, "forward_members"):  # an ensemble: forward is the log of the mean member probability
        members = net.forward_members(x)
        assert members.shape[0] == 8 and members.shape[2] == 5
        assert torch.allclose(out.exp(), members.softmax(-1).mean(1), atol=1e-5)
    net.train()
    net(x).logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "name", [n for n in models.names() if "n_numeric" in inspect.signature(models.get(n)).parameters]
)
def test_n_numeric_is_filled_from_the_data(name: str) -> None:
    cls = models.get(name)
    params = inspect.signature(cls).parameters
    extra = {"embedding": True} if "embedding" in params else {}  # TabM embeds numerics only when asked
    model = GenreClassifier(17, 5, num_numeric=4, backbone=functools.partial(cls, **extra))
    assert model.backbone.input.n_numeric == 4
    explicit = GenreClassifier(17, 5, num_numeric=4, backbone=functools.partial(cls, n_numeric=2, **extra))
    assert explicit.backbone.input.n_numeric == 2  # a setting given explicitly wins


@pytest.mark.parametrize("name", models.names())
def test_every_architecture_documents_its_settings(name: str) -> None:
    cls = models.get(name)
    doc = inspect.getdoc(cls) or ""
    settings = [p for p in inspect.signature(cls).parameters if p not in ("self",)]
    missing = [p for p in settings if f"{p}:" not in doc]
    assert not missing, f"{name} docstring lacks Args entries for {missing} (LightningCLI shows them in --help)"


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_mlp_settings(activation: str, norm: str | None) -> None:
    net = models.build("MLP", 4, 3, hidden_dims=[8, 6], activation=activation, dropout=0.1, norm=norm)
    assert net(torch.randn(5, 4)).shape == (5, 3)
    assert [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)] == [8, 6, 3]


def test_unknown_names_and_bad_settings_are_clear_errors() -> None:
    with pytest.raises(GenreTorchError, match="unknown backbone 'resnet9000'; known: .*MLP"):
        models.build("resnet9000", 4, 3)
    with pytest.raises(GenreTorchError, match="known activations: relu, leaky_relu, tanh, sigmoid, gelu"):
        models.build("MLP", 4, 3, activation="swishy")
    with pytest.raises(GenreTorchError, match="MLP: .*widths"):
        models.build("MLP", 4, 3, widths=[3])
    with pytest.raises(GenreTorchError, match="hidden_dims must be positive integers"):
        models.build("MLP", 4, 3, hidden_dims=[-3])
    with pytest.raises(GenreTorchError, match=r"dropout must be in \[0, 1\)"):
        models.build("PLRMLP", 4, 3, dropout=2.0)


def test_old_registry_names_still_resolve() -> None:
    assert models.get("plr_mlp") is models.get("PLRMLP") and models.get("mlp").__name__ == "MLP"


def test_a_backbone_subclass_anywhere_is_known_by_name() -> None:
    class TinyTestNet(models.Backbone):
        """A linear model.

        Args:
            in_features: input width.
            num_classes: genres.
        """

        def __init__(self, in_features: int, num_classes: int) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(in_features, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    assert isinstance(models.build("TinyTestNet", 3, 2), TinyTestNet)


def test_a_second_class_under_a_taken_name_is_refused_by_name() -> None:
    from genre_torch.core.components import resolve

    class MLP(models.Backbone):  # a user's class that shadows the built-in name
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(GenreTorchError, match="2 classes are named MLP .*give the full class_path"):
        resolve("MLP", models.Backbone)
    assert resolve("genre_torch.core.models.mlp.MLP", models.Backbone) is not MLP  # a full path is unambiguous
    del MLP
    gc.collect()  # the local class leaves Backbone.__subclasses__(), so later tests see one MLP again
    assert resolve("MLP", models.Backbone).__module__ == "genre_torch.core.models.mlp"
