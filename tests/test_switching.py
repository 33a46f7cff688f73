"""--model.backbone over a config naming another backbone: the settings it inherits are named in one warning."""

from __future__ import annotations

import warnings
from pathlib import Path

from genre_torch.cli import run_cli
from genre_torch.core.training.switching import inherited_settings

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")
RESMLP = "genre_torch.core.models.resmlp.ResMLP"


def messages(*args: str) -> list[str]:
    """The warnings a CLI run that only builds model, data and trainer gives about inherited settings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_cli(["--config", CONFIG, "--trainer.logger", "false", *args], run=False)
    return [str(w.message) for w in caught if str(w.message).startswith("--model.backbone")]


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
