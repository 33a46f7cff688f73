"""Fault suite (issue 13): corrupt or non-finite checkpoints, unscorable rows, a dataset mismatch, NaN tool outputs.

Output paths and full disks: test_fault_outputs.py; checkpoint writes: test_safe_files.py; fuzzing: test_fuzz.py.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from genre_torch.cli import main
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training.atomic_io import AtomicCheckpointIO
from genre_torch.tools import prepare
from genre_torch.tools.predict import ALL_MISSING, NOT_FINITE, Predictor
from tests.conftest import make_music_genre
from tests.fault_tools import flip_bit, listing, one_line_error, run
from tests.trained import trained


def predict_args(ckpt: Path, source: Path, output: Path) -> list[str]:
    return ["predict", "--ckpt_path", str(ckpt), "--input", str(source), "--output", str(output)]


def probabilities(table: pd.DataFrame) -> np.ndarray:
    return table[[c for c in table.columns if c.endswith("probability")]].to_numpy(np.float64)


@pytest.mark.parametrize("member", ["archive/data/0", "archive/data.pkl", "last"])
def test_a_flipped_bit_in_a_checkpoint_is_refused(capsys, tmp_path, member: str) -> None:
    """The zip holds a CRC-32 per tensor: even a last-mantissa-bit flip (a finite, plausible value) is caught."""
    bad = tmp_path / "bad.ckpt"
    shutil.copy(trained("music_genre").ckpt, bad)
    if member == "last":  # the last tensor written: the preprocessing state
        with zipfile.ZipFile(bad) as archive:
            member = [n for n in archive.namelist() if "/data/" in n][-1]
    flip_bit(bad, member, byte=4 if member.endswith(".pkl") else 0)
    rows = trained("music_genre").test_rows
    err = one_line_error(capsys, *predict_args(bad, rows, tmp_path / "p.csv"))
    assert f"is corrupt ({member} fails its checksum)" in err and "retrain or use another" in err
    err = one_line_error(capsys, "export", "--ckpt_path", bad, "--format", "onnx", "--output", tmp_path / "m.onnx")
    assert "is corrupt" in err
    with pytest.raises(GenreTorchError, match="is corrupt"):  # fit/validate/test --ckpt_path go through the plugin
        AtomicCheckpointIO().load_checkpoint(bad)
    assert listing(tmp_path) == ["bad.ckpt"]


@pytest.mark.parametrize(
    ("where", "value"), [("state_dict", float("nan")), ("state_dict", float("inf")), ("center", float("inf"))]
)
def test_a_checkpoint_with_non_finite_tensors_is_refused(capsys, tmp_path, where: str, value: float) -> None:
    ckpt = torch.load(trained("music_genre").ckpt, weights_only=True)
    if where == "state_dict":
        name = next(iter(ckpt["state_dict"]))
        ckpt["state_dict"][name].view(-1)[3] = value
        expected = f"state_dict.{name}"
    else:
        ckpt["GenreDataModule"]["preprocessor"]["center"][2] = value
        expected = "data state.preprocessor.center"
    torch.save(ckpt, tmp_path / "nan.ckpt")  # a valid archive: its checksums match the bad values
    err = one_line_error(capsys, *predict_args(tmp_path / "nan.ckpt", trained("music_genre").test_rows, "p.csv"))
    assert "non-finite" in err and expected.split(".", 1)[1] in err and "retrain" in err
    if where == "state_dict":
        with pytest.raises(GenreTorchError, match="non-finite"):
            AtomicCheckpointIO().load_checkpoint(tmp_path / "nan.ckpt")
    assert listing(tmp_path) == ["nan.ckpt"]


def _edited(ckpt: dict, case: str) -> dict:
    ckpt = {**ckpt, "GenreDataModule": {**ckpt["GenreDataModule"]}, "hyper_parameters": {**ckpt["hyper_parameters"]}}
    pre = ckpt["GenreDataModule"]["preprocessor"] = {**ckpt["GenreDataModule"]["preprocessor"]}
    if case == "width":
        ckpt["hyper_parameters"]["num_features"] = 10
    elif case == "unknown_setting":
        ckpt["hyper_parameters"]["bogus"] = 1
    elif case == "no_vocab":
        del pre["vocab"]
    elif case == "fewer_genres":
        pre["classes"] = pre["classes"][:2]
    else:
        ckpt["state_dict"] = dict(list(ckpt["state_dict"].items())[:-1])
    return ckpt


@pytest.mark.parametrize("case", ["width", "unknown_setting", "no_vocab", "fewer_genres", "missing_weight"])
def test_a_checkpoint_whose_parts_do_not_fit_is_refused(capsys, tmp_path, case: str) -> None:
    """Tracebacks on main; `fewer_genres` even exported a model whose genre list was shorter than its output."""
    torch.save(_edited(torch.load(trained("music_genre").ckpt, weights_only=True), case), tmp_path / "x.ckpt")
    err = one_line_error(capsys, *predict_args(tmp_path / "x.ckpt", trained("music_genre").test_rows, "p.csv"))
    assert "retrain" in err
    err = one_line_error(capsys, "export", "--ckpt_path", tmp_path / "x.ckpt", "--format", "onnx", "--output", "m.onnx")
    assert "retrain" in err and listing(tmp_path) == ["x.ckpt"]


def test_paths_that_name_folders(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_ = trained("music_genre")
    (tmp_path / "folder").mkdir()
    ok = ["--input", str(run_.test_rows), "--output", "p.csv"]
    assert "checkpoint folder is a folder" in one_line_error(capsys, "predict", "--ckpt_path", "folder", *ok)
    ck = ["predict", "--ckpt_path", str(run_.ckpt)]
    assert "input file folder is a folder" in one_line_error(capsys, *ck, "--input", "folder", "--output", "p.csv")
    err = one_line_error(capsys, *ck, "--input", str(run_.test_rows), "--output", "new/")
    assert "output new/ names a folder; give a file name" in err and listing(tmp_path) == ["folder"]


def test_missing_columns_name_the_dataset_the_input_looks_like(capsys, tmp_path) -> None:
    args = predict_args(trained("spotify_tracks").ckpt, trained("music_genre").test_rows, tmp_path / "p.csv")
    err = one_line_error(capsys, *args)
    assert "lacks required column(s) explicit, time_signature" in err
    assert err.endswith("the input looks like music_genre; this checkpoint was trained on spotify_tracks")


def test_rows_with_inf_or_huge_values_are_scored_or_flagged(capsys, tmp_path) -> None:
    """Exit 0; a row either has finite probabilities or an error, and only scored rows count in the accuracy."""
    rows = pd.read_csv(trained("music_genre").test_rows)
    rows.loc[rows.index[::3], "loudness"] = np.inf
    rows.loc[rows.index[1::5], "popularity"] = 1e308
    rows.loc[rows.index[2::7], "tempo"] = -np.inf
    rows.to_csv(tmp_path / "inf.csv", index=False)
    code, out, _ = run(capsys, *predict_args(trained("music_genre").ckpt, tmp_path / "inf.csv", tmp_path / "p.csv"))
    pred = pd.read_csv(tmp_path / "p.csv")
    ok = pred["error"].isna().to_numpy()
    assert code == 0 and len(pred) == len(rows)
    assert np.isfinite(probabilities(pred)[ok]).all() and np.isnan(probabilities(pred)[~ok]).all()
    assert pred["predicted_genre"][~ok].isna().all() and pred["predicted_genre"][ok].notna().all()
    correct, labelled = map(int, re.search(r"^accuracy: [0-9.]+ \((\d+) of (\d+) rows", out, re.M).groups())
    assert labelled == ok.sum() and correct == (pred["music_genre"] == pred["predicted_genre"])[ok].sum()


def test_non_finite_probabilities_become_an_error_not_a_prediction(capsys, tmp_path, monkeypatch) -> None:
    real = Predictor._probabilities

    def half_nan(self: Predictor, clean: pd.DataFrame) -> np.ndarray:
        probs = real(self, clean)
        probs[::2, 1] = np.nan
        return probs

    monkeypatch.setattr(Predictor, "_probabilities", half_nan)
    run_ = trained("music_genre")
    code, out, err = run(capsys, *predict_args(run_.ckpt, run_.test_rows, tmp_path / "p.csv"), "--chunk_size", "10")
    pred = pd.read_csv(tmp_path / "p.csv")
    bad = (np.arange(len(pred)) % 10) % 2 == 0  # every other row of each chunk of 10
    assert code == 0 and (pred["error"][bad] == NOT_FINITE).all() and pred["error"][~bad].isna().all()
    assert pred["predicted_genre"][bad].isna().all() and np.isnan(probabilities(pred)[bad]).all()
    assert f" of {(~bad).sum()} rows with a music_genre label" in out
    assert f"{bad.sum()} row(s) could not be scored" in err


def test_rows_of_another_dataset_are_refused_unless_forced_then_warned(capsys, tmp_path) -> None:
    """A music_genre model scoring spotify_tracks rows: every column it needs is there, no category is known."""
    args = predict_args(trained("music_genre").ckpt, trained("spotify_tracks").test_rows, tmp_path / "p.csv")
    assert "looks like spotify_tracks rows" in one_line_error(capsys, *args) and not (tmp_path / "p.csv").exists()
    code, out, err = run(capsys, *args, "--force")
    warning = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert code == 0 and len(warning) == 1, err
    assert "the input looks like spotify_tracks; this checkpoint was trained on music_genre" in warning[0]
    assert "100% of its categorical values were never seen in training" in warning[0]
    # the same model's own rows, but key and mode written as numbers: most categories unseen, the schema is right
    rows = pd.read_csv(trained("music_genre").test_rows)
    rows["key"], rows["mode"] = np.arange(len(rows)) % 12, np.arange(len(rows)) % 2
    rows.to_csv(tmp_path / "numbers.csv", index=False)
    code, out, err = run(capsys, *predict_args(trained("music_genre").ckpt, tmp_path / "numbers.csv", "q.csv"))
    assert code == 0 and "never seen in training (key=" in err and "looks like" not in err
    code, out, err = run(capsys, *predict_args(trained("music_genre").ckpt, trained("music_genre").test_rows, "r.csv"))
    assert code == 0 and "warning" not in err  # the model's own kind of rows: no warning


def test_line_breaks_in_text_keep_one_output_row_per_input_row(capsys, tmp_path) -> None:
    rows = pd.read_csv(trained("music_genre").test_rows).head(4)
    rows["track_name"] = ["a\rb", "c\nd", "e\r\nf", 'g"h,']
    rows.to_csv(tmp_path / "in.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    code, _, _ = run(capsys, *predict_args(trained("music_genre").ckpt, tmp_path / "in.csv", tmp_path / "p.csv"))
    assert code == 0 and pd.read_csv(tmp_path / "p.csv")["track_name"].tolist() == rows["track_name"].tolist()


def test_cleaning_warnings_once_per_column_for_the_whole_input(tmp_path) -> None:
    make_music_genre(n=100).to_csv(tmp_path / "in.csv", index=False)  # tempo '?' on 10 rows, duration -1 on 10
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main([*predict_args(trained("music_genre").ckpt, tmp_path / "in.csv", tmp_path / "p.csv"), "--chunk_size", "7"])
    tempo = [str(w.message) for w in caught if "column tempo" in str(w.message)]
    assert tempo == ["music_genre: column tempo: 10 value(s) unparseable -> missing (imputed with the training median)"]


def test_input_from_a_pipe(capsys, tmp_path) -> None:
    """`--input <(zcat songs.csv.gz)`: a FIFO is read like a file (it was refused as 'does not exist')."""
    os.mkfifo(tmp_path / "pipe")
    data = Path(trained("music_genre").test_rows).read_bytes()
    writer = threading.Thread(target=(tmp_path / "pipe").write_bytes, args=(data,))
    writer.start()
    code, out, _ = run(capsys, *predict_args(trained("music_genre").ckpt, tmp_path / "pipe", tmp_path / "p.csv"))
    writer.join(timeout=30)
    assert code == 0 and len(pd.read_csv(tmp_path / "p.csv")) == len(pd.read_csv(trained("music_genre").test_rows))


def test_nothing_scorable_is_an_error_and_writes_nothing(capsys, tmp_path) -> None:
    rows = pd.read_csv(trained("music_genre").test_rows).head(7)
    features = [c for c in rows.columns if c not in ("instance_id", "artist_name", "track_name", "music_genre")]
    rows[features] = np.nan
    rows.to_csv(tmp_path / "empty.csv", index=False)
    err = one_line_error(capsys, *predict_args(trained("music_genre").ckpt, tmp_path / "empty.csv", tmp_path / "p"))
    assert f"none of the 7 rows of {tmp_path / 'empty.csv'} could be scored: {ALL_MISSING}" in err
    assert listing(tmp_path) == ["empty.csv"]


def test_importance_refuses_non_finite_probabilities(capsys, tmp_path, monkeypatch) -> None:
    real = Predictor._probabilities
    monkeypatch.setattr(Predictor, "_probabilities", lambda self, rows: real(self, rows) * np.nan)
    run_ = trained("music_genre")
    args = ["--ckpt_path", run_.ckpt, "--data.path", run_.data, "--repeats", "1", "--runs_dir", tmp_path / "runs"]
    err = one_line_error(capsys, "importance", *args)
    assert "non-finite probabilities" in err and not (tmp_path / "runs").exists()


def test_prepare_never_writes_non_finite_features(capsys, tmp_path) -> None:
    """Data with inf values: prepared with finite features (inf as missing), or refused with nothing written."""
    raw = make_music_genre()
    raw.loc[raw.index[::4], "loudness"] = np.inf
    raw.loc[raw.index[1::9], "popularity"] = 1e308
    raw.to_csv(tmp_path / "inf.csv", index=False)
    args = ["prepare", "--dataset", "music_genre", "--data.path", tmp_path / "inf.csv", "--output", tmp_path / "prep"]
    code, _, err = run(capsys, *args)
    if code == 0:
        for part in (tmp_path / "prep").glob("*/*.parquet"):
            assert np.isfinite(np.concatenate(pq.read_table(part).column("features").to_pylist())).all()
    else:
        assert code == 2 and "non-finite" in err and listing(tmp_path) == ["inf.csv"]


def test_prepare_guard_catches_non_finite_values(tmp_path) -> None:
    x = np.ones((4, 3), np.float32)
    x[2, 1] = np.nan
    (tmp_path / "train").mkdir()
    pq.write_table(prepare.features_table(np.arange(4), np.zeros(4), x), tmp_path / "train" / "part-0.parquet")
    state = {"numeric": ["tempo"], "median": [0.0], "center": [1.0], "scale": [1.0]}
    with pytest.raises(GenreTorchError, match="prepared train split would hold non-finite feature values"):
        prepare.check_finite(tmp_path, state)
    with pytest.raises(GenreTorchError, match="fitted center of column tempo is non-finite"):
        prepare.check_finite(tmp_path, {**state, "center": [float("inf")]})
