"""tune and sweep build every value of their space before any trial starts: a bad later value is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("optuna")

from genre_torch.tools.search_space import SearchSpace  # noqa: E402
from tests.fault_tools import one_line_error  # noqa: E402

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")


def test_the_cover_gives_every_value_of_every_entry() -> None:
    space = SearchSpace(
        {
            "model.backbone.dropout": {"low": 0.0, "high": 0.5},
            "model.backbone.activation": {"choices": ["relu", "tanh", "gelu"]},
            "data.batch_size": {"low": 32, "high": 32},
            "model.backbone.hidden_dims": {"choices": [[8], [16]], "when": {"model.backbone.activation": "tanh"}},
        }
    )
    cells = space.cover()
    seen = {(k, json.dumps(v)) for cell in cells for k, v in cell.items()}
    assert seen == {
        ("model.backbone.dropout", "0.0"), ("model.backbone.dropout", "0.5"), ("data.batch_size", "32"),
        *(("model.backbone.activation", json.dumps(a)) for a in ("relu", "tanh", "gelu")),
        ("model.backbone.hidden_dims", "[8]"), ("model.backbone.hidden_dims", "[16]"),
    }  # fmt: skip
    assert len(cells) < 3 * 2 * 2  # not the whole grid


@pytest.mark.parametrize(
    ("tool", "space"),
    [
        ("sweep", {"model.backbone.dropout": {"choices": [0.1, 7.5]}}),
        ("tune", {"model.backbone.activation": {"choices": ["relu", "nope"]}}),
        ("tune", {"model.backbone.dropout": {"low": 0.1, "high": 7.5}}),
    ],
)
def test_a_bad_value_anywhere_in_the_space_fails_before_any_trial(data_env, capsys, tool: str, space: dict) -> None:
    Path("space.yaml").write_text(json.dumps(space))
    line = one_line_error(capsys, tool, "--config", CONFIG, "--space", "space.yaml", "--trainer.max_epochs", "1")
    assert "space.yaml: the options" in line and ("7.5" in line or "nope" in line), line
    assert not Path("runs").exists()  # no study, no trial


def test_storage_in_a_missing_folder_is_one_line_and_creates_nothing(data_env, capsys, tmp_path) -> None:
    Path("space.yaml").write_text(json.dumps({"seed_everything": {"choices": [0]}}))
    url = f"sqlite:///{tmp_path}/nonexistent/dir/x.db"
    line = one_line_error(capsys, "sweep", "--config", CONFIG, "--space", "space.yaml", "--storage", url)
    assert f"folder {tmp_path}/nonexistent/dir of --storage" in line and "does not exist" in line, line
    assert not (tmp_path / "nonexistent").exists()


def test_a_finished_search_leaves_no_lock_file(data_env, capsys) -> None:
    from genre_torch.cli import main

    Path("space.yaml").write_text(json.dumps({"seed_everything": {"choices": [0]}}))
    main(["sweep", "--config", CONFIG, "--space", "space.yaml", "--trainer.max_epochs", "1"])
    assert Path("runs/music_genre-space/study.db").is_file()
    assert not list(Path().rglob("*.lock"))
