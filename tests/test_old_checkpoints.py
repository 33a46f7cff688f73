"""Checkpoints written before typed backbones (arch: mlp, arch_args: {...}) still predict; test refuses in one line."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from genre_torch import load_predictor
from genre_torch.cli import main
from genre_torch.tools import info
from tests.trained import trained

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")


@pytest.fixture(scope="module")
def old_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The session's trained model with its hyperparameters rewritten the way genre_torch stored them before."""
    run = trained("music_genre")
    ckpt = torch.load(run.ckpt, weights_only=True)
    ckpt.pop("provenance", None)  # not recorded then
    hp = ckpt["hyper_parameters"]
    backbone = hp.pop("backbone")["init_args"]
    hp.pop("criterion"), hp.pop("batch_transform"), hp.pop("num_numeric")
    hp.update(arch="mlp", arch_args=backbone, label_smoothing=0.0, gradient_clip_val=None)
    path = tmp_path_factory.mktemp("old") / "old.ckpt"
    torch.save(ckpt, path)
    return run.ckpt, path


def test_an_old_checkpoint_predicts_like_the_new_one(old_checkpoint) -> None:
    new, old = old_checkpoint
    rows = pd.read_csv(trained("music_genre").test_rows)
    assert load_predictor(old).predict(rows).equals(load_predictor(new).predict(rows))


def test_an_old_checkpoint_in_test_is_one_line_saying_how_to_retrain(old_checkpoint, capsys, data_env) -> None:
    _, old = old_checkpoint
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--config", CONFIG, "--ckpt_path", str(old)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and "older genre_torch" in err and "retrain with `genre-torch fit" in err


def test_a_checkpoint_without_provenance_still_tests_and_shows_in_info(tmp_path, capsys, data_env) -> None:
    run = trained("music_genre")
    ckpt = torch.load(run.ckpt, weights_only=True)
    assert "provenance" in ckpt
    ckpt.pop("provenance")  # as checkpoints were written before it was recorded
    path = tmp_path / "no_provenance.ckpt"
    torch.save(ckpt, path)
    main(["test", "--config", CONFIG, "--data.path", str(run.data), "--ckpt_path", str(path)])
    out, err = capsys.readouterr()
    assert float(out.split("test/acc", 1)[1].split()[0]) == pytest.approx(run.test_acc, abs=1e-4)
    assert "may not reproduce" not in err  # nothing to compare: no warning
    main(["info", "--ckpt_path", str(path)])
    assert "provenance: not recorded" in capsys.readouterr().out


def test_info_reads_a_checkpoint_from_before_typed_backbones(old_checkpoint) -> None:
    _, old = old_checkpoint
    lines = info.describe(info.read(old))
    assert lines[0].startswith("provenance: not recorded") and "arch mlp, arch_args {" in lines[1]


def test_class_paths_from_before_the_core_had_wings_still_load(tmp_path) -> None:
    from genre_torch.core.compat import MOVED, new_path
    from genre_torch.core.training.losses import CrossEntropy

    assert new_path("genre_torch.core.losses.CrossEntropy") == "genre_torch.core.training.losses.CrossEntropy"
    assert new_path("genre_torch.core.datasets.schema.read_yaml") == "genre_torch.core.data.datasets.schema.read_yaml"
    assert new_path("genre_torch.core.models.realmlp.RealMLP") == "genre_torch.core.models.realmlp.RealMLP"
    assert new_path("genre_torch.core.checkpoint_io.atomic_path") == "genre_torch.core.training.safe_files.atomic_path"
    old_top, old_in_wing = (importlib.import_module(f"genre_torch.core.{w}checkpoint_io") for w in ("", "training."))
    assert old_top is old_in_wing is importlib.import_module("genre_torch.core.training.safe_files")  # renamed
    assert new_path("genre_torch.core.encoders.TargetEncoder") == "genre_torch.core.data.target_encoding.TargetEncoder"
    assert new_path("genre_torch.core.data.titles.TextEncoder") == "genre_torch.core.data.text_encoding.TextEncoder"
    from genre_torch.core.data.text_encoding import TextEncoder

    assert importlib.import_module("genre_torch.core.titles").TextEncoder is TextEncoder
    import genre_torch.core.losses as old_losses

    assert old_losses.CrossEntropy is CrossEntropy and all(importlib.import_module(old) for old in MOVED)
    run = trained("music_genre")
    ckpt = torch.load(run.ckpt, weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["criterion"]["class_path"] == "genre_torch.core.training.losses.CrossEntropy"
    hp["criterion"]["class_path"] = "genre_torch.core.losses.CrossEntropy"  # as checkpoints stored it before
    hp["lr_scheduler"] = {"class_path": "genre_torch.core.schedules.CosLog4", "init_args": {}}
    path = tmp_path / "old_paths.ckpt"
    torch.save(ckpt, path)
    rows = pd.read_csv(run.test_rows)
    assert load_predictor(path).predict(rows).equals(load_predictor(run.ckpt).predict(rows))


def test_a_checkpoint_with_the_old_preprocessor_keys_predicts_and_exports(tmp_path) -> None:
    """Before they were named center / scale, the datamodule state kept the (x - center) / scale statistics as
    mean / std (which held median / IQR under robust scaling)."""
    run = trained("music_genre")
    ckpt = torch.load(run.ckpt, weights_only=True)
    pre = ckpt["GenreDataModule"]["preprocessor"]
    ckpt["GenreDataModule"]["preprocessor"] = {{"center": "mean", "scale": "std"}.get(k, k): v for k, v in pre.items()}
    assert {"mean", "std"} <= set(ckpt["GenreDataModule"]["preprocessor"]) and {"center", "scale"} <= set(pre)
    path = tmp_path / "old_keys.ckpt"
    torch.save(ckpt, path)
    rows = pd.read_csv(run.test_rows)
    assert load_predictor(path).predict(rows).equals(load_predictor(run.ckpt).predict(rows))
    for name, source in (("old", path), ("new", run.ckpt)):
        main(["export", "--ckpt_path", str(source), "--format", "torchscript", "--output", str(tmp_path / name)])
    old, new = (torch.jit.load(tmp_path / n) for n in ("old", "new"))
    x = torch.randn(5, len(json.loads((tmp_path / "new.json").read_text())["columns"]))
    assert torch.equal(old(x), new(x))
