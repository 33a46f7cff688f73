"""A backbone that inherits settings from another class (--model.backbone over a config naming another backbone, or
a config switching the default MLP to another class): the settings it inherits are named in one warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from genre_torch.cli import run_cli
from genre_torch.core.training.switching import inherited_settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "music_genre.yaml")
RESMLP = "genre_torch.core.models.resmlp.ResMLP"


def messages(*args: str, config: str = CONFIG) -> list[str]:
    """The warnings a CLI run that only builds model, data and trainer gives about inherited settings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_cli(["--config", config, "--trainer.logger", "false", *args], run=False)
    return [str(w.message) for w in caught if " keeps " in str(w.message)]


def test_switching_backbones_names_the_settings_the_new_one_inherits(data_env) -> None:
    (line,) = messages("--model.backbone", RESMLP)
    assert line.startswith("--model.backbone ResMLP keeps dropout=0.0, norm=None from the config's MLP")
    assert "(dropout=0.1, norm='batch')" in line and "\n" not in line
    # settings given on the command line are chosen, not inherited
    assert "dropout" not in messages("--model.backbone", RESMLP, "--model.backbone.dropout", "0.0")[0]
    chosen = ["--model.backbone.dropout", "0.1", "--model.backbone.norm", "batch"]
    assert messages("--model.backbone", RESMLP, *chosen) == []
    assert messages() == []  # the config's own backbone: nothing to say


def test_inherited_settings_needs_a_config_with_another_backbone(tmp_path) -> None:
    backbone = {"class_path": RESMLP, "init_args": {"dropout": 0.0, "norm": "batch"}}
    assert inherited_settings(["fit"], backbone) is None  # no config file: the defaults are the class's own
    assert inherited_settings(["fit", "--config", str(tmp_path / "missing.yaml")], backbone) is None
    line = inherited_settings(["fit", f"--config={CONFIG}", "--model.backbone", "ResMLP"], backbone)
    assert line is not None and "dropout=0.0" in line and "norm" not in line
    given = ["fit", "--config", CONFIG, "--model.backbone", '{"class_path": "ResMLP", "init_args": {"dropout": 0}}']
    assert inherited_settings(given, backbone) is None


def test_a_config_naming_another_backbone_is_told_what_it_keeps_from_the_default_one(data_env, tmp_path) -> None:
    config = tmp_path / "realmlp.yaml"  # RealMLP without an activation: MLP's relu, not RealMLP's selu
    config.write_text(
        "model:\n  backbone:\n    class_path: genre_torch.core.models.realmlp.RealMLP\n"
        "    init_args: {hidden_dims: [64], dropout: 0.15}\n"
    )
    (line,) = messages(config=str(config))
    assert line.startswith("the config's backbone RealMLP keeps activation='relu' from another backbone")
    assert "(activation='selu')" in line and "dropout" not in line
    assert messages("--model.backbone.activation", "relu", config=str(config)) == []  # chosen, not inherited


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_no_shipped_config_inherits_a_backbone_setting(data_env, config: Path) -> None:
    assert messages(config=str(config)) == []
