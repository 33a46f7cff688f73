"""Bad input: one clear line on stderr, exit code 2, no traceback, nothing written to checkpoints/ or runs/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from genre_torch.cli import main, run_cli
from tests.conftest import make_music_genre

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")
FAST = ["--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false", "--data.batch_size", "64"]


def run_bad(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", CONFIG, "--trainer.max_epochs", "1", *args])
    stderr = capsys.readouterr().err
    err = stderr.strip().splitlines()[-1]  # in-process, earlier lines are warnings about pytest's argv
    assert exit_info.value.code == 2
    assert err.startswith("genre-torch: error: ") and "Traceback" not in stderr
    assert not Path("checkpoints").exists() and not Path("runs").exists()
    return err


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_console_script_prints_one_line(tmp_path) -> None:
    env = {**os.environ, "GENRE_TORCH_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "genre_torch.cli", "fit", "--config", CONFIG],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("genre-torch: error: no data file for music_genre")
    assert not list(tmp_path.iterdir())


def write(df: pd.DataFrame) -> str:
    df.to_csv("bad.csv", index=False)
    return "bad.csv"


def test_missing_data_file(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENRE_TORCH_DATA_DIR", str(tmp_path / "nowhere"))
    err = run_bad(capsys)
    assert "nowhere/music_genre.csv" in err and "GENRE_TORCH_DATA_DIR" in err
    assert "does not exist" in run_bad(capsys, "--data.path", "missing.csv")


def test_not_a_csv(capsys, data_env) -> None:
    Path("song.csv.gz").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    assert "not a readable CSV" in run_bad(capsys, "--data.path", "song.csv.gz")


def test_missing_columns_are_listed(capsys, data_env) -> None:
    path = write(make_music_genre().drop(columns=["tempo", "valence"]))
    err = run_bad(capsys, "--data.path", path)
    assert "lacks required column(s) tempo, valence" in err


def test_single_class_and_tiny_class(capsys, data_env) -> None:
    df = make_music_genre().dropna(how="all")
    assert "at least 2" in run_bad(capsys, "--data.path", write(df.assign(music_genre="Jazz")))
    tiny = pd.concat([df, df.iloc[[0]].assign(music_genre="Polka")])
    assert "class 'Polka' has only 1 row" in run_bad(capsys, "--data.path", write(tiny))


def test_unknown_architecture_and_activation(capsys, data_env) -> None:
    assert "model.backbone" in run_bad(capsys, "--model.backbone", "Transformer9000")
    err = run_bad(capsys, "--model.backbone.activation", "swishy")
    assert "known activations: relu, leaky_relu, tanh, sigmoid, gelu" in err


def test_garbage_numbers_become_missing_with_a_warning(data_env, capsys) -> None:
    df = make_music_genre()
    df["loudness"] = df["loudness"].astype(object)
    df.loc[df.index % 7 == 0, "loudness"] = "loud!"
    with pytest.warns(UserWarning, match=r"column loudness: \d+ value\(s\) unparseable -> missing"):
        main(["fit", "--config", CONFIG, "--trainer.max_epochs", "1", "--data.path", write(df)])
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.batch_size", "0"], "--data.batch_size must be at least 1, got 0"),
        (["--data.batch_size", "-5"], "--data.batch_size must be at least 1, got -5"),
        (["--data.eval_batch_size", "0"], "--data.eval_batch_size must be at least 1"),
        (["--data.batches_per_step", "0"], "--data.batches_per_step must be at least 1"),
        (["--data.test_fraction", "1.5"], r"--data.test_fraction must be in \(0, 1\), got 1.5"),
        (["--data.val_fraction", "0"], r"--data.val_fraction must be in \(0, 1\), got 0"),
        (["--data.split_seed", "-1"], "--data.split_seed must be in"),
        (["--optimizer.lr", "-1"], "Invalid learning rate: -1"),
        (["--optimizer.weight_decay", "-0.1"], "Invalid weight_decay value: -0.1"),
        (["--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "0"], "--lr_scheduler"),
        (["--model.backbone.hidden_dims", "[-3]"], r"hidden_dims must be positive integers, got \[-3\]"),
        (["--model.backbone.dropout", "2.0"], r"dropout must be in \[0, 1\), got 2.0"),
        (["--trainer.max_epochs", "-5"], "--trainer.max_epochs must be >= 0"),
        (["--num_threads", "0"], "--num_threads must be at least 1"),
    ],
)
def test_numbers_out_of_range_are_one_line_errors(capsys, data_env, args: list[str], message: str) -> None:
    assert re.search(message, run_bad(capsys, *args))


def test_infinite_and_huge_values_become_missing_and_the_model_stays_finite(data_env, capsys) -> None:
    df = make_music_genre()
    df["energy"] = df["energy"].astype(object)
    rows = df["music_genre"].notna()
    bad = {"loudness": rows & (df.index % 9 < 2), "popularity": rows & (df.index % 11 == 5)}
    bad["energy"] = rows & (df.index % 13 == 6)
    df.loc[bad["loudness"], "loudness"] = np.where(df.index[bad["loudness"]] % 2, np.inf, -np.inf)
    df.loc[bad["popularity"], "popularity"] = 1e308
    # text that parses as NaN or inf (read_csv itself turns "nan", "NaN", "NA"... into missing values)
    df.loc[bad["energy"], "energy"] = np.where(df.index[bad["energy"]] % 2, "NAN", "-Infinity")
    with pytest.warns(UserWarning) as caught:
        cli = run_cli(["fit", "--config", CONFIG, *FAST, "--data.path", write(df)])
    notes = [str(w.message) for w in caught if "-> missing" in str(w.message)]
    for column, mask in bad.items():
        note = f"music_genre: column {column}: {mask.sum()} value(s) non-finite -> missing"
        assert notes.count(f"{note} (imputed with the training median)") == 1, notes
    best = cli.trainer.checkpoint_callback.best_model_path
    weights = torch.load(best, weights_only=True)["state_dict"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
    assert float(re.search(r"test accuracy: ([0-9.]+)", capsys.readouterr().out).group(1)) > 0.5


def test_a_feature_column_without_any_value_is_an_error(capsys, data_env) -> None:
    df = make_music_genre()
    df["tempo"], df["energy"] = "fast", np.inf
    err = run_bad(capsys, "--data.path", write(df))
    assert "music_genre: feature column(s) energy, tempo have no usable value" in err


def test_bad_dataset_spec_file(capsys, data_env) -> None:
    Path("spec.yaml").write_text("name: mine\ntarget: label\nnumerik: auto\n")
    assert "spec.yaml: unknown key 'numerik'" in run_bad(capsys, "--data.dataset", "spec.yaml")
    assert "dataset spec file nope.yaml does not exist" in run_bad(capsys, "--data.dataset", "nope.yaml")
