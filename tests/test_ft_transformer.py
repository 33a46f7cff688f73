"""FT-Transformer: the same function as the authors' reference (`rtdl_revisiting_models`), and its settings."""

from __future__ import annotations

import pytest
import torch

from genre_torch.core import models
from genre_torch.core.errors import GenreTorchError


def reference_with_our_weights(ours: torch.nn.Module, n: int, classes: int, **settings: float) -> torch.nn.Module:
    """The reference FT-Transformer (numeric features only: one token per column, as ours) with our weights."""
    rtdl = pytest.importorskip("rtdl_revisiting_models")
    d = ours.tokenizer.weight.shape[1]
    theirs = rtdl.FTTransformer(
        n_cont_features=n, cat_cardinalities=[], d_out=classes, n_blocks=len(ours.blocks), d_block=d,
        attention_n_heads=ours.blocks[0].attention.n_heads, ffn_d_hidden=None,
        ffn_d_hidden_multiplier=4 / 3, **settings,
    )  # fmt: skip
    values = {"cls_embedding.weight": ours.tokenizer.cls}
    values |= {"cont_embeddings.weight": ours.tokenizer.weight, "cont_embeddings.bias": ours.tokenizer.bias}
    names = {"attention_norm": "attention_normalization", "ffn_norm": "ffn_normalization"}
    names |= {"ffn.0": "ffn.linear1", "ffn.3": "ffn.linear2"}
    for key, value in ours.blocks.state_dict().items():
        i, rest = key.split(".", 1)
        for ours_name, their_name in names.items():
            rest = rest.replace(ours_name + ".", their_name + ".", 1) if rest.startswith(ours_name + ".") else rest
        values[f"backbone.blocks.{i}.{rest}"] = value
    values |= {
        "backbone.output.normalization.weight": ours.out[0].weight,
        "backbone.output.normalization.bias": ours.out[0].bias,
    }
    values |= {"backbone.output.linear.weight": ours.head.weight, "backbone.output.linear.bias": ours.head.bias}
    assert sorted(values) == sorted(theirs.state_dict())  # every weight of the reference has its counterpart
    theirs.load_state_dict({k: v.detach().clone() for k, v in values.items()})
    return theirs


@pytest.mark.parametrize("n_layers,n_heads", [(1, 1), (3, 4)])
def test_the_same_function_as_the_reference(n_layers: int, n_heads: int) -> None:
    torch.manual_seed(0)
    ours = models.build("FTTransformer", 6, 4, d_token=16, n_layers=n_layers, n_heads=n_heads).eval()
    dropouts = {"attention_dropout": 0.2, "ffn_dropout": 0.1, "residual_dropout": 0.0}
    theirs = reference_with_our_weights(ours, 6, 4, **dropouts).eval()
    x = torch.randn(50, 6)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x, None), atol=1e-5)


def test_defaults_and_optimiser_groups_are_the_papers() -> None:
    rtdl = pytest.importorskip("rtdl_revisiting_models")
    ours = models.build("FTTransformer", 11, 10)
    default = rtdl.FTTransformer.get_default_kwargs()  # 3 blocks
    default.pop("_is_default")
    theirs = rtdl.FTTransformer(n_cont_features=11, cat_cardinalities=[], d_out=10, **default)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    block = ours.blocks[0]
    assert [ours.blocks[0].attention.dropout.p, block.ffn[2].p, block.residual_dropout.p] == [0.2, 0.1, 0.0]
    assert isinstance(block.attention_norm, torch.nn.Identity) and isinstance(
        ours.blocks[1].attention_norm, torch.nn.LayerNorm
    )
    groups = models.optimizer_groups(ours, 1e-4, 1e-5)
    their_no_decay = sum(p.numel() for p in theirs.make_parameter_groups()[1]["params"])
    assert [g["weight_decay"] for g in groups] == [1e-5, 0.0] and sum(
        p.numel() for p in groups[1]["params"]
    ) == their_no_decay


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"residual_dropout": 1.0}, r"residual_dropout must be in \[0, 1\)"),
        ({"n_heads": 5}, r"n_heads \(5\) must divide d_token \(16\)"),
        ({"ffn_factor": 0.001}, "ffn_factor"),
    ],
)
def test_bad_settings_are_one_line(settings: dict, message: str) -> None:
    with pytest.raises(GenreTorchError, match=message):
        models.build("FTTransformer", 5, 3, **{"d_token": 16, "n_heads": 4, **settings})
