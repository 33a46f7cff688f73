"""Dataset specs in YAML: the built-in files, the format's checks, `numeric: auto`, and checkpoints' specs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from genre_torch.core.data.datasets import (
    MUSIC_GENRE,
    SPECS,
    SPOTIFY_TRACKS,
    DatasetSpec,
    get_spec,
    load_spec,
    spec_from_checkpoint_state,
)
from genre_torch.core.errors import GenreTorchError
from tests.conftest import REPO

AUDIO = ("popularity", "acousticness", "danceability", "duration_ms", "energy", "instrumentalness")


def test_builtin_specs_are_yaml_files_in_the_package() -> None:
    folder = resources.files("genre_torch.core.data.datasets")
    assert sorted(f.name for f in folder.iterdir() if f.name.endswith(".yaml")) == [
        "music_genre.yaml",
        "spotify_tracks.yaml",
    ]
    assert sorted(SPECS) == ["music_genre", "spotify_tracks"]
    assert MUSIC_GENRE.numeric[:6] == AUDIO and MUSIC_GENRE.categorical == ("key", "mode")
    assert MUSIC_GENRE.valid_ranges == {"duration_ms": (0.0, float("inf"))} and MUSIC_GENRE.meta == {
        "artist_name": None
    }
    assert SPOTIFY_TRACKS.dedupe_on == ("track_id", "track_genre") and SPOTIFY_TRACKS.meta == {
        "artists": ";",
        "album_name": None,
    }
    assert SPOTIFY_TRACKS.source["url"].endswith("/dataset.csv") and MUSIC_GENRE.source["file"] == "music_genre.csv"


def test_a_built_wheel_carries_the_spec_files(tmp_path) -> None:
    pytest.importorskip("setuptools")
    source = tmp_path / "src"  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(REPO / "genre_torch", source / "genre_torch", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = tmp_path.glob("genre_torch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "genre_torch/core/data/datasets/music_genre.yaml",
        "genre_torch/core/data/datasets/spotify_tracks.yaml",
    } <= set(names)


@pytest.mark.parametrize("spec", [MUSIC_GENRE, SPOTIFY_TRACKS], ids=lambda s: s.name)
def test_to_dict_round_trip(spec: DatasetSpec) -> None:
    plain = spec.to_dict()
    assert DatasetSpec.from_dict(plain) == spec
    assert all(isinstance(v, (str, list, dict)) for v in plain.values())  # primitives only (checkpoints, configs)


def test_load_spec_takes_a_name_a_path_or_a_mapping(tmp_path) -> None:
    assert load_spec("music_genre") is MUSIC_GENRE
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ntarget: label\nnumeric: [a, b]\ncategorical: [c]\n")
    spec = load_spec(str(path))
    assert (spec.name, spec.target, spec.features) == ("mine", "label", ("a", "b", "c"))
    assert load_spec({"name": "mine", "target": "label", "numeric": ["a", "b"], "categorical": ["c"]}) == spec
    with pytest.raises(GenreTorchError, match="dataset spec file .*nope.yaml does not exist"):
        load_spec(str(tmp_path / "nope.yaml"))
    with pytest.raises(GenreTorchError, match="unknown dataset 'nope'; known datasets: music_genre, spotify_tracks"):
        get_spec("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ntarget: y\nnumeric: auto\ncolour: red\n", "unknown key 'colour'; known keys: name, description"),
        ("name: x\ntarget: y\nnumeric: 3\n", "numeric must be 'auto' or a list of column names, got 3"),
        ("name: x\ntarget: y\nnumeric: automatic\n", "numeric must be 'auto' or a list of column names"),
        ("name: x\ntarget: y\nnumeric: [a, 7]\n", "numeric must be a list of column names, got \\['a', 7\\]"),
        ("name: x\nnumeric: auto\n", "the key 'target' is required"),
        ("name: x y\ntarget: y\nnumeric: auto\n", "name must be a name of letters"),
        ("name: x\ntarget: y\nnumeric: auto\nvalid_ranges: {a: [1]}\n", "valid_ranges.a must be \\[low, high\\]"),
        ("name: x\ntarget: y\nnumeric: [a]\nvalid_ranges: {a: [2, 1]}\n", "with low <= high"),
        ("name: x\ntarget: y\nnumeric: [a]\nvalid_ranges: {b: [0, 1]}\n", "'b', which is not a numeric column"),
        ("name: x\ntarget: y\nnumeric: [a]\ncategorical: [a]\n", "'a' is listed under both numeric and categorical"),
        ("name: x\ntarget: y\nnumeric: [y]\n", "'y' is listed under both target and numeric"),
        ("name: x\ntarget: y\n", "no feature columns"),
        ("name: x\ntarget: y\nnumeric: auto\nsha256: abc\n", "sha256 must be 64 hex digits"),
        ("name: x\ntarget: y\nnumeric: auto\nsource: {ftp: z}\n", "source must be a mapping with the keys url"),
        ("name: x\ntarget: y\nnumeric: auto\nmeta: {a: 1}\n", "meta must be a mapping of column -> separator"),
        ("- name: x\n", "a dataset spec must be a mapping"),
        ("name: x\ntarget: [y\n", "is not valid YAML \\(.* at line 3\\)"),
    ],
)
def test_bad_spec_files_are_one_line_errors_naming_file_and_key(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(GenreTorchError, match=message) as info:
        load_spec(str(path))
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_numeric_auto_takes_every_other_numeric_column() -> None:
    spec = DatasetSpec.from_dict(
        {"name": "s", "target": "label", "numeric": "auto", "categorical": ["mode"], "id_columns": ["song"]}
        | {"ignore": ["skip"], "valid_ranges": {"b": [0, None]}}
    )
    df = pd.DataFrame(
        {
            "Unnamed: 0": range(4),  # a saved row index: never a feature
            "song": [1, 2, 3, 4],
            "a": ["1.5", "?", "2", "3"],  # mostly numbers: numeric (the '?' becomes missing)
            "text": ["x", "y", "1", "z"],  # mostly text: not numeric
            "b": [1.0, -2.0, np.nan, 4.0],
            "skip": [1, 2, 3, 4],
            "empty": [np.nan] * 4,  # no number at all: not numeric
            "mode": ["M", "m", "M", "m"],
            "label": ["u", "v", "u", "v"],
        }
    )
    assert spec.features == ("mode",) and spec.to_dict()["numeric"] == "auto"
    resolved = spec.resolve(df)
    assert resolved.numeric == ("a", "b") and not resolved.auto_numeric
    assert resolved.to_dict()["numeric"] == ["a", "b"]  # what a checkpoint stores
    with pytest.warns(UserWarning) as caught:
        clean = spec.clean(df)
    assert clean["a"].isna().sum() == 1 and clean["b"].isna().sum() == 2  # '?', then NaN and -2 (out of range)
    assert [str(w.message) for w in caught] == [
        "s: column a: 1 value(s) unparseable -> missing (imputed with the training median)",
        "s: column b: 1 value(s) out of range [0, inf] -> missing (imputed with the training median)",
    ]


def test_spec_from_checkpoint_state_prefers_the_stored_spec() -> None:
    mine = DatasetSpec.from_dict({"name": "music_genre", "target": "label", "numeric": ["a"]})
    assert spec_from_checkpoint_state({"dataset": "music_genre", "spec": mine.to_dict()}) == mine
    assert spec_from_checkpoint_state({"dataset": "music_genre"}) is MUSIC_GENRE  # checkpoints of older versions
    with pytest.raises(GenreTorchError, match="unknown dataset 'gone'"):
        spec_from_checkpoint_state({"dataset": "gone"})


def test_datamodule_takes_an_inline_spec_from_a_config(tmp_path, capsys) -> None:
    from genre_torch.cli import run_cli

    data = tmp_path / "songs.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(size=60), "genre": ["a", "b", "c"] * 20}).to_csv(
        data, index=False
    )
    config = tmp_path / "config.yaml"
    config.write_text(f"data:\n  path: {data}\n  dataset:\n    name: inline\n    target: genre\n    numeric: auto\n")
    cli = run_cli(["--config", str(config)], run=False)
    assert cli.datamodule.spec.name == "inline" and cli.datamodule.load().spec.numeric == ("x", "y")
    assert cli.datamodule.preprocessor.numeric == ["x", "y"]
