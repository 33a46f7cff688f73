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
from tests.fault_tools import listing
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


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
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


def test_repeated_header_lines_are_left_out_and_ids_stay_integers(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = trained("music_genre")
    lines = run.test_rows.read_text().splitlines()
    (tmp_path / "cat.csv").write_text("\n".join([lines[0], lines[0], *lines[1:5], lines[0], *lines[5:]]) + "\n")
    capsys.readouterr()
    main(["predict", "--ckpt_path", str(run.ckpt), "--input", str(tmp_path / "cat.csv"), "--output", "p.csv"])
    out, err = capsys.readouterr()
    rows = pd.read_csv(run.test_rows)
    assert "left out 2 line(s) repeating the header" in err
    assert f"of {rows['music_genre'].notna().sum()} rows with a music_genre label" in out
    pred = pd.read_csv(tmp_path / "p.csv", dtype=str)
    assert len(pred) == len(rows) and "instance_id" not in set(pred["instance_id"])
    assert pred["instance_id"].tolist() == [str(int(v)) for v in rows["instance_id"]]  # not "56768.0"


def test_another_datasets_rows_are_refused_unless_forced(capsys, tmp_path) -> None:
    run = trained("music_genre")
    other = trained("spotify_tracks").test_rows
    err = fails(capsys, "--ckpt_path", str(run.ckpt), "--input", str(other), "--output", str(tmp_path / "p.csv"))
    assert "looks like spotify_tracks" in err and "trained on music_genre" in err and "--force" in err
    assert not list(tmp_path.iterdir())
    predict(capsys, run.ckpt, other, tmp_path / "p.csv", "--force")
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(pd.read_csv(other))


def test_rows_without_any_usable_number_are_refused_unless_forced(capsys, tmp_path) -> None:
    run = trained("music_genre")
    rows = pd.read_csv(run.test_rows)
    numeric = run.datamodule.preprocessor.numeric
    rows[numeric] = "?"
    rows.to_csv(tmp_path / "junk.csv", index=False)
    out = ["--input", str(tmp_path / "junk.csv"), "--output", str(tmp_path / "p.csv")]
    err = fails(capsys, "--ckpt_path", str(run.ckpt), *out)
    assert "none of the numeric columns" in err and "--force" in err and listing(tmp_path) == ["junk.csv"]
    predict(capsys, run.ckpt, tmp_path / "junk.csv", tmp_path / "p.csv", "--force")
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(rows)


def test_unusable_names_are_one_line(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = trained("music_genre")
    ck, source = ["--ckpt_path", str(run.ckpt)], ["--input", str(run.test_rows)]
    assert "File name too long" in fails(capsys, *ck, *source, "--output", "a" * 300 + ".csv")
    assert "is a folder" in fails(capsys, "--ckpt_path", str(tmp_path), *source, "--output", "p.csv")
    assert "is a folder" in fails(capsys, *ck, "--input", str(tmp_path), "--output", "p.csv")
    assert not list(tmp_path.iterdir())


def test_predict_proba_is_predict_on_raw_rows(tmp_path) -> None:
    run = trained("music_genre")
    raw = make_music_genre(n=40, seed=5).drop(columns=["music_genre"])  # '?', -1 and empty rows
    raw.index = raw.index + 1000
    predictor = load_predictor(run.ckpt)
    table, proba = predictor.predict(raw), predictor.predict_proba(raw)
    assert list(proba.columns) == predictor.classes and list(proba.index) == list(raw.index)
    ok = table["error"].isna().to_numpy()
    assert (~ok).any() and proba[~ok].isna().all().all()
    assert (proba[ok].idxmax(axis=1) == table["predicted_genre"][ok]).all()
    np.testing.assert_allclose(proba[ok].max(axis=1), table["probability"][ok].astype(float), rtol=1e-6)
    assert not hasattr(predictor, "probabilities")  # no public method scores uncleaned rows


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_the_python_api_warns_in_one_line(tmp_path) -> None:
    run = trained("music_genre")
    make_music_genre(n=40, seed=5).to_csv(tmp_path / "songs.csv", index=False)  # '?' and -1: data warnings
    code = (
        "import pandas as pd\n"
        "from genre_torch import load_predictor\n"
        f"load_predictor({str(run.ckpt)!r}).predict(pd.read_csv({str(tmp_path / 'songs.csv')!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr, proc.stderr
    assert all(line.startswith("warning: music_genre: column ") for line in proc.stderr.splitlines()), proc.stderr


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_predict_imports_neither_lightning_nor_the_module(tmp_path) -> None:
    run = trained("music_genre")
    argv = ["predict", "--ckpt_path", str(run.ckpt), "--input", str(run.test_rows), "--output", str(tmp_path / "p.csv")]
    code = (
        "import sys\n"
        "from genre_torch.cli import main\n"
        f"main({argv!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning')))\n"
        "print('genre_torch.core.training.module' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p.csv").exists() and proc.stdout.splitlines()[-2:] == ["[]", "False"], proc.stdout
