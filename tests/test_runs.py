"""Run folders and checkpoints: concurrent runs never share a folder, bad --ckpt_path and diverged runs are one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from genre_torch.cli import main, run_cli

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")
FIT = ["fit", "--config", CONFIG, "--trainer.max_epochs", "2", "--data.batch_size", "64"]


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and err.startswith("genre-torch: error: ")
    return err


@pytest.mark.slow
def test_runs_started_together_get_their_own_folders(data_env, warm) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [warm["python"], "-m", "genre_torch.cli", *FIT, "--trainer.enable_progress_bar", "false"]  # warm: forks
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    runs = sorted(p.name for p in Path("runs/music_genre").iterdir())
    assert runs == ["version_0", "version_1", "version_2"]
    for version in runs:
        folder = Path("checkpoints/music_genre") / version
        last = torch.load(folder / "last.ckpt", weights_only=True)
        state = next(v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint"))
        assert Path(state["dirpath"]) == folder and Path(state["best_model_path"]).parent == folder
        assert (Path("runs/music_genre") / version / "metrics.json").is_file()
        assert not [p for p in folder.iterdir() if p.name.startswith("last-v")]


def test_bad_ckpt_path_is_one_line_and_creates_nothing(capsys, data_env, tmp_path) -> None:
    assert "does not exist" in one_line_error(capsys, *FIT, "--ckpt_path", "missing/last.ckpt")
    Path("rows.csv").write_text("a,b\n1,2\n")
    assert "not a readable checkpoint" in one_line_error(capsys, "test", "--config", CONFIG, "--ckpt_path", "rows.csv")
    assert not Path("runs").exists() and not Path("checkpoints").exists()
    good = run_cli([*FIT, "--trainer.enable_progress_bar", "false"])
    best = Path(good.trainer.checkpoint_callback.best_model_path)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(best.read_bytes()[:2000])
    assert "not a readable checkpoint" in one_line_error(capsys, "validate", "--config", CONFIG, "--ckpt_path",
                                                         str(truncated))  # fmt: skip
    spotify = str(Path(CONFIG).with_name("spotify_tracks.yaml"))
    err = one_line_error(capsys, "test", "--config", spotify, "--ckpt_path", str(best))
    assert "was trained on music_genre, not spotify_tracks: leave out --config / --data.dataset" in err
    other = ["test", "--config", CONFIG, "--data.missing_indicators", "true", "--ckpt_path", str(best)]
    assert "does not fit this model" in one_line_error(capsys, *other)
    assert sorted(p.name for p in Path("runs/music_genre").iterdir()) == ["version_0"]  # nothing new was claimed


def test_a_diverged_run_stops_in_one_line_and_saves_no_non_finite_weights(capsys, data_env) -> None:
    err = one_line_error(capsys, *FIT, "--optimizer.lr", "1e30", "--trainer.max_epochs", "5")
    assert "training diverged in epoch" in err and "lower --optimizer.lr" in err
    for path in Path("checkpoints").rglob("*.ckpt"):
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(v.isfinite().all() for v in state.values() if v.is_floating_point()), path


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_an_evaluation_logs_into_the_run_it_evaluates_and_claims_no_version(data_env) -> None:
    first = run_cli(FIT)
    best = first.trainer.checkpoint_callback.best_model_path
    run_cli(["test", "--ckpt_path", best])
    run_cli(["test", "--ckpt_path", best])
    run_cli(["validate", "--ckpt_path", best])
    run = Path("runs/music_genre/version_0")
    assert {"test", "test_2", "validate"} <= {p.name for p in run.iterdir() if p.is_dir()}
    assert list((run / "test").glob("events.out.tfevents*")) and list((run / "test_2").glob("events.out.tfevents*"))
    assert sorted(p.name for p in Path("checkpoints/music_genre").iterdir()) == ["version_0"]
    main(["importance", "--ckpt_path", best, "--repeats", "1"])
    assert list((run / "importance").glob("importance.csv"))  # explained in the run it explains
    second = run_cli(FIT)  # one number names one training
    assert second.trainer.logger.version == 1 and Path("checkpoints/music_genre/version_1/last.ckpt").is_file()
