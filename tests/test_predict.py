"""`genre-torch predict` and load_predictor: checkpoint-only scoring, test accuracy reproduced, bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_torch import load_predictor
from genre_torch.cli import main
from genre_torch.tools.predict import ALL_MISSING
from tests.conftest import make_music_genre
from tests.trained import trained


def predict(capsys: pytest.CaptureFixture[str], ckpt: Path, source: Path, output: Path, *extra: str) -> str:
    capsys.readouterr()  # drop what training the shared model printed
    main(["predict", "--ckpt_path", str(ckpt), "--input", str(source), "--output", str(output), *extra])
    return capsys.readouterr().out


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run predict expecting a one-line error and exit code 2; return the line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("genre-torch: error: ")
    return err[0]


@pytest.mark.parametrize("dataset", ["music_genre", "spotify_tracks"])
def test_predict_reproduces_test_accuracy(capsys, tmp_path, dataset: str) -> None:
    run = trained(dataset)
    out = predict(capsys, run.ckpt, run.test_rows, tmp_path / "pred.csv", "--chunk_size", "37")
    assert float(re.search(r"^accuracy: ([0-9.]+)", out, re.M).group(1)) == pytest.approx(run.test_acc, abs=5e-5)
    assert re.search(r"scored \d+ rows in [0-9.]+ s \([0-9,]+ rows/s\)", out)
    pred, rows = pd.read_csv(tmp_path / "pred.csv"), pd.read_csv(run.test_rows)
    assert len(pred) == len(rows) and pred["track_name"].tolist() == rows["track_name"].tolist()  # input order
    classes = run.datamodule.preprocessor.classes
    assert set(pred["predicted_genre"]) <= set(classes) and pred["error"].isna().all()
    assert (pred["predicted_genre"] == pred["top1_genre"]).all()
    assert (pred["probability"] >= pred["top2_probability"]).all()
    assert (pred["top2_probability"] >= pred["top3_probability"]).all()
    assert not list(tmp_path.glob(".*.tmp"))


def test_raw_rows_chunks_and_unscorable_rows(capsys, tmp_path) -> None:
    run = trained("music_genre")
    raw = make_music_genre(n=50, seed=3).drop(columns=["music_genre"])  # raw format: '?', -1, 5 empty rows
    raw.loc[raw.index[0], "key"] = "H"  # an unseen category is scored, not an error
    raw.to_csv(tmp_path / "songs.csv", index=False)
    out = predict(capsys, run.ckpt, tmp_path / "songs.csv", tmp_path / "a.csv")
    assert "accuracy" not in out  # no label column: nothing to compare with
    predict(capsys, run.ckpt, tmp_path / "songs.csv", tmp_path / "b.csv", "--chunk_size", "4")
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(raw) == 55
    empty = raw.isna().all(axis=1).to_numpy()
    assert (a["error"][empty] == ALL_MISSING).all() and a["predicted_genre"][empty].isna().all()
    assert a["error"][~empty].isna().all() and a["predicted_genre"][~empty].notna().all()
    assert list(a.columns[:3]) == ["instance_id", "artist_name", "track_name"]
    ids = (tmp_path / "a.csv").read_text().splitlines()[1 + int(np.flatnonzero(~empty)[0])].split(",")[0]
    assert ids == str(int(raw["instance_id"][~empty].iloc[0]))  # not "32894.0" although empty rows made it float


def test_python_api_returns_the_same_table(tmp_path, capsys) -> None:
    run = trained("spotify_tracks")
    rows = pd.read_csv(run.test_rows)
    table = load_predictor(run.ckpt).predict(rows)
    predict(capsys, run.ckpt, run.test_rows, tmp_path / "p.csv")
    written = pd.read_csv(tmp_path / "p.csv")
    assert table["predicted_genre"].tolist() == written["predicted_genre"].tolist()
    np.testing.assert_allclose(table["top3_probability"].astype(float), written["top3_probability"], rtol=1e-6)
    assert list(table.index) == list(rows.index)


def test_missing_columns_one_line_and_no_output(capsys, tmp_path) -> None:
    run = trained("music_genre")
    pd.read_csv(run.test_rows).drop(columns=["tempo", "key"]).to_csv(tmp_path / "bad.csv", index=False)
    err = fails(capsys, "--ckpt_path", str(run.ckpt), "--input", str(tmp_path / "bad.csv"), "--output", "p.csv")
    assert "lacks required column(s) tempo, key" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # neither output nor temporary file
    # the console script prints exactly one line too
    cmd = [sys.executable, "-m", "genre_torch.cli", "predict", "--ckpt_path", str(run.ckpt)]
    cmd += ["--input", "bad.csv", "--output", "out.csv"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "tempo" in proc.stderr
    assert not (tmp_path / "out.csv").exists()


def test_other_bad_input(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = trained("music_genre")
    ok = ["--input", str(run.test_rows), "--output", "p.csv"]
    assert "checkpoint nope.ckpt does not exist" in fails(capsys, "--ckpt_path", "nope.ckpt", *ok)
    Path("junk.ckpt").write_bytes(b"not a checkpoint")
    assert "not a readable checkpoint" in fails(capsys, "--ckpt_path", "junk.ckpt", *ok)
    ck = ["--ckpt_path", str(run.ckpt)]
    assert "input file nope.csv does not exist" in fails(capsys, *ck, "--input", "nope.csv", "--output", "p.csv")
    Path("bin.csv.gz").write_bytes(b"\x89PNG\r\n\x1a\n\x00binary")
    assert "not a readable CSV" in fails(capsys, *ck, "--input", "bin.csv.gz", "--output", "p.csv")
    Path("header.csv").write_text(",".join(pd.read_csv(run.test_rows).columns) + "\n")
    assert "has no rows" in fails(capsys, *ck, "--input", "header.csv", "--output", "p.csv")
    assert "does not exist" in fails(capsys, *ck, "--input", str(run.test_rows), "--output", "no/dir/p.csv")
    assert "required: --output" in fails(capsys, *ck, "--input", str(run.test_rows))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin.csv.gz", "header.csv", "junk.ckpt"]
