"""Issue 26: one line instead of a traceback, the right message, and nothing left behind by a failed run."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from tests.fault_tools import listing, one_line_error, read_only_folder
from tests.trained import trained

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")
FIT = ["fit", "--config", CONFIG, "--trainer.max_epochs", "1"]
LONG = "x" * 300


def test_runs_dir_on_a_read_only_filesystem(data_env, capsys) -> None:
    with read_only_folder(Path("ro")) as ro:
        line = one_line_error(capsys, *FIT, "--runs_dir", ro)
        assert "cannot write ro/music_genre" in line and "choose a writable folder" in line, line
    assert listing(Path()) == ["ro"]  # no checkpoints/ either


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "check", LONG],
        ["data", "check", "/".join(["d" * 200] * 25) + "/music_genre.csv"],
        [*FIT, "--data.dataset", LONG],
    ],
    ids=["data-check-name", "data-check-deep-path", "fit-name"],
)
def test_names_too_long_are_one_line(data_env, capsys, argv: list[str]) -> None:
    line = one_line_error(capsys, *argv)
    assert "too long" in line and len(line) < 300, line
    assert listing(Path()) == []


def test_a_spec_whose_name_is_too_long_for_a_folder(data_env, capsys) -> None:
    Path("long.yaml").write_text(json.dumps({"name": LONG, "target": "music_genre", "numeric": "auto"}))
    csv = str(data_env / "music_genre.csv")
    line = one_line_error(capsys, *FIT, "--data.dataset", "long.yaml", "--data.path", csv)
    assert "File name too long" in line, line
    assert listing(Path()) == ["long.yaml"]


@pytest.mark.parametrize("sub", ["fit", "test"])
def test_a_folder_as_checkpoint_says_so(data_env, capsys, sub: str) -> None:
    folder = trained("music_genre").ckpt.parent
    line = one_line_error(capsys, sub, "--config", CONFIG, "--ckpt_path", folder)
    assert f"checkpoint {folder} is a folder; pass a .ckpt file in it" in line, line


@pytest.mark.parametrize("argv", [[*FIT, "--data.dataset", "specs"], ["data", "check", "x.csv", "--dataset", "specs"]])
def test_a_folder_as_dataset_spec_says_so(data_env, capsys, argv: list[str]) -> None:
    Path("specs").mkdir()
    Path("x.csv").write_text("a,b\n1,2\n")
    assert "dataset spec specs is a folder" in one_line_error(capsys, *argv)


def test_a_fit_failing_at_its_first_checkpoint_leaves_nothing(data_env, capsys, monkeypatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # every checkpoint write fails as on a full disk
    line = one_line_error(capsys, *FIT)
    assert "No space left on device" in line, line
    assert listing(Path()) == []  # no runs/<dataset>/version_0 (config, hparams, events), no checkpoint folder
