"""genre-torch sweep: every grid cell exactly once across workers and across a killed worker; exclusive claims
of queued cells on SQLite; the markdown summary; scripts/bench_search.py as a smoke run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from genre_torch.cli import main  # noqa: E402
from genre_torch.tools.search_summary import columns, markdown, summary_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "music_genre.yaml")
GRID = {
    "seed_everything": {"choices": [0, 1]},
    "model.backbone.activation": {"choices": ["relu", "tanh"]},
    "model.backbone.hidden_dims": {"choices": [[8], [16], [8, 8]]},
}
COMPLETE = optuna.trial.TrialState.COMPLETE


def test_columns_and_summary_tables() -> None:
    varied = ["model.backbone.activation", "model.backbone.hidden_dims"]
    assert columns({"model.backbone.activation": "tanh", "model.backbone.hidden_dims": [64, 64]}, varied) == {
        "activation": "tanh", "depth": 2, "width": 64
    }  # fmt: skip
    results = [
        ({"activation": "relu", "depth": 1, "seed": 0}, 0.50, 10),
        ({"activation": "relu", "depth": 1, "seed": 1}, 0.52, 12),
        ({"activation": "relu", "depth": 2, "seed": 0}, 0.60, 20),
        ({"activation": "relu", "depth": 2, "seed": 1}, 0.56, 22),
        ({"activation": "tanh", "depth": 1, "seed": 0}, 0.55, 30),
        ({"activation": "tanh", "depth": 1, "seed": 1}, 0.55, 30),
    ]
    names, ranked = summary_rows(results)
    assert names == ["activation", "depth"] and [g["accs"] for g in ranked][0] == [0.60, 0.56]
    text = markdown(names, ranked)
    assert "| activation=relu | relu | 2 | 58.00 ± 2.83 | 2 | 21 |" in text  # mean ± sample std over seeds
    assert "| activation=tanh | tanh | 1 | 55.00 ± 0.00 | 2 | 30 |" in text
    assert "| depth=1 | tanh | 1 | 55.00 ± 0.00 | 2 | 30 |" in text  # best depth-1 config: tanh, not relu
    assert "median 1.41, max 2.83 points (activation=relu, depth=2)" in text


CLAIM = """
import sys, optuna
from genre_torch.tools.search_storage import open_storage
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="claims", storage=open_storage(sys.argv[1], 60))
while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
    study.optimize(lambda t: t.suggest_int("cell", 0, 10**6), n_trials=1)
"""


@pytest.mark.slow
def test_sqlite_claims_of_queued_cells_are_exclusive(tmp_path, warm) -> None:
    from genre_torch.tools.search_storage import open_storage, open_study

    url = f"sqlite:///{tmp_path / 'study.db'}"
    open_study(open_storage(url, 60), "claims", {}, [{"cell": i} for i in range(150)])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([warm["python"], "-c", CLAIM, url], env=env, stderr=subprocess.PIPE) for _ in range(3)]
    errors = [w.communicate(timeout=300)[1].decode() for w in workers]
    # a trial claimed twice ends with "Trial#N has already finished" in the slower claimant
    assert all(w.returncode == 0 for w in workers), "\n".join(errors)[-3000:]
    trials = optuna.load_study(study_name="claims", storage=url).trials
    # (a worker that found the queue empty only at its claim runs one sampled trial, without a "cell" attribute)
    cells = [t.user_attrs["cell"] for t in trials if t.state == COMPLETE and "cell" in t.user_attrs]
    assert sorted(cells) == list(range(150))


KILL_AT_CELL_2 = """
import os, signal, sqlite3, sys, time
import genre_torch.tools.search as search
import genre_torch.tools.search_trial as search_trial
real = search_trial.run_trial
BEATS = "select count(*) from trial_heartbeats join trials using (trial_id) where trials.number = ?"
def run_trial(trial, **kwargs):
    if trial.user_attrs.get("cell") == 2:  # the worker dies in the middle of cell 2, once its heartbeat is recorded
        with sqlite3.connect("runs/music_genre-grid/study.db") as db:
            while not db.execute(BEATS, (trial.number,)).fetchone()[0]:
                time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(trial, **kwargs)
search_trial.run_trial = run_trial
search.sweep(sys.argv[1:])
"""


@pytest.mark.slow
def test_sweep_runs_every_cell_once_across_workers_and_a_killed_worker(data_env, tmp_path, capsys, warm) -> None:
    space = tmp_path / "grid.yaml"
    space.write_text(json.dumps(GRID))
    args = ["--config", CONFIG, "--space", str(space), "--heartbeat", "1", "--trainer.max_epochs", "4"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([warm["python"], "-c", KILL_AT_CELL_2, *args], env=env, capture_output=True, timeout=300)
    assert killed.returncode == -9, killed.stderr.decode()[-3000:]
    study = optuna.load_study(study_name="music_genre-grid", storage="sqlite:///runs/music_genre-grid/study.db")
    before = {t.user_attrs["cell"]: t.value for t in study.trials if t.state == COMPLETE}
    assert sorted(before) == [0, 1]

    main(["sweep", *args, "--workers", "2", "--timeout", "300"])  # resumes: the dead worker's cell failed, queued again
    trials = study.trials
    done = [t for t in trials if t.state == COMPLETE]
    assert sorted(t.user_attrs["cell"] for t in done) == list(range(12))  # every cell exactly once
    assert {t.user_attrs["cell"]: t.value for t in done if t.user_attrs["cell"] < 2} == before
    assert [t.state for t in trials if t.user_attrs.get("cell") == 2][0] == optuna.trial.TrialState.FAIL
    assert all(t.state == COMPLETE or t.user_attrs.get("cell") == 2 or t.user_attrs.get("surplus") for t in trials)
    assert len({t.user_attrs["worker"] for t in done if t.user_attrs["cell"] >= 2}) == 2  # both workers took cells
    out = capsys.readouterr().out
    assert "12 of 12 cells finished" in out
    rows = {line.split(" | ")[0][2:] for line in out.splitlines() if line.startswith("| ") and "=" in line[:20]}
    assert rows == {"activation=relu", "activation=tanh", "depth=1", "depth=2", "width=8", "width=16"}
    assert Path("runs/music_genre-grid/summary.md").read_text() == out[out.index("Sweep `") :]


@pytest.mark.slow
def test_bench_search_quick(data_env) -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_search.py"), "--quick", "--out_dir", "bench"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "## Search benchmark: genre-torch sweep" and "scripts/bench_search.py --quick" in lines[2]
    rows = [line for line in lines if line.startswith("| subset") or line.startswith("| full grid")]
    assert [r.split(" | ")[2:4] for r in rows] == [["1", "2"], ["2", "2"], ["2", "4"]]  # workers, trainings
    assert "| GPU rows | not measured (no --gpu)" in out.stdout and "workers / 1 worker on the subset" in out.stdout
    assert "4 of 4 cells finished" in out.stdout
    # the arithmetic floor counts only rows trained (10 steps here, not whole epochs), so it stays below the time
    floor = re.search(r"that alone needs ([0-9.]+) min of 2 workers; the trainings took ([0-9.]+) min", out.stdout)
    assert floor and float(floor[1]) <= float(floor[2]), out.stdout


def test_bench_search_gpu_without_a_gpu_is_a_usage_error(data_env) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the --gpu rows run")
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_search.py"), "--gpu"]
    out = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--gpu needs a CUDA GPU" in out.stderr and not out.stdout


def test_resuming_a_grid_queues_again_a_cell_that_failed_without_a_retry(tmp_path) -> None:
    """A cell whose trial failed (an error, or a worker stopped between failing a stale trial and queuing its
    retry) runs again when the sweep resumes; cells that finished or still wait are not queued twice."""
    from genre_torch.tools.search_storage import open_storage, open_study

    url, cells = f"sqlite:///{tmp_path / 'study.db'}", [{"seed_everything": s} for s in range(3)]
    open_study(open_storage(url, 60), "lost", {}, cells)
    study = optuna.load_study(study_name="lost", storage=url)
    study.optimize(lambda t: 1.0, n_trials=1)  # cell 0 completes
    study.optimize(lambda t: float("nan") if t.user_attrs["cell"] == 1 else 1.0, n_trials=1)  # cell 1 fails
    open_study(open_storage(url, 60), "lost", {}, cells)  # the resumed sweep
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.user_attrs["cell"] for t in waiting) == [1, 2]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"seed_everything": 2}, {"seed_everything": 1}]


def test_a_trial_killed_before_it_began_is_failed_and_queued_again(tmp_path) -> None:
    """A worker killed between Optuna's ask and the trial's first heartbeat leaves a running trial with none,
    which Optuna never finds stale: a later command fails it and queues its cell again once it is older than 3
    heartbeats; a trial that began, or one asked by the command's own workers, is left alone."""
    import time

    from genre_torch.tools.search_storage import fail_trials_that_never_began, open_storage, open_study

    url, cells = f"sqlite:///{tmp_path / 'study.db'}", [{"seed_everything": s} for s in range(2)]
    storage = open_storage(url, 60)
    open_study(storage, "orphan", {}, cells)
    study = optuna.load_study(study_name="orphan", storage=storage)
    study.ask(), study.ask().set_user_attr("worker", 1)  # both running, no heartbeat; the second began
    time.sleep(0.01)
    started = time.time()  # a later command; then one of its workers asks a trial, still beginning
    study.ask()
    fail_trials_that_never_began(study, storage, 60, started)  # asked just now: it may still be beginning
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.RUNNING] * 3
    for _ in range(2):  # a second pass (another worker) queues nothing more
        fail_trials_that_never_began(study, storage, 0, started)
    failed, begun, own, *retries = study.get_trials()
    assert failed.state == optuna.trial.TrialState.FAIL
    assert begun.state == own.state == optuna.trial.TrialState.RUNNING
    assert [(t.state, t.system_attrs["fixed_params"], t.system_attrs["failed_trial"]) for t in retries] == [
        (optuna.trial.TrialState.WAITING, {"seed_everything": 0}, 0)
    ]


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_a_sweep_resumed_after_a_kill_before_a_trial_began_runs_every_cell(data_env, tmp_path) -> None:
    space = tmp_path / "grid.yaml"
    space.write_text("seed_everything: {choices: [0, 1]}\n")
    args = ["sweep", "--config", CONFIG, "--space", str(space), "--heartbeat", "1", "--trainer.max_epochs", "1"]
    main([*args, "--timeout", "0"])  # the study with its two cells queued, nothing trained
    study = optuna.load_study(study_name="music_genre-grid", storage="sqlite:///runs/music_genre-grid/study.db")
    study.ask()  # a worker took cell 0 and was killed before the trial began: running, without a heartbeat
    main([*args, "--timeout", "60"])  # before: waited for that trial until the timeout, cell 0 never ran
    done = [t.user_attrs["cell"] for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(done) == [0, 1]


def test_a_signal_during_optunas_ask_ends_a_trial_that_beats(data_env, tmp_path, monkeypatch, capsys) -> None:
    """Raised inside Optuna's ask, the signal would leave a running trial without a heartbeat (never retried):
    it is held until the trial has begun, so the trial beats and a resumed sweep retries it once it is stale."""
    import signal
    import sqlite3

    real = optuna.Study.ask

    def ask(self: optuna.Study, *args: object, **kwargs: object) -> optuna.Trial:
        trial = real(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # as the search's parent ends its workers
        return trial

    monkeypatch.setattr(optuna.Study, "ask", ask)
    space = tmp_path / "grid.yaml"
    space.write_text("seed_everything: {choices: [0, 1]}\n")
    with pytest.raises(SystemExit) as stop:
        main(["sweep", "--config", CONFIG, "--space", str(space), "--heartbeat", "1"])
    assert stop.value.code == 128 + signal.SIGTERM
    assert "genre-torch: interrupted by SIGTERM during the search" in capsys.readouterr().err.splitlines()[-1]
    study = optuna.load_study(study_name="music_genre-grid", storage="sqlite:///runs/music_genre-grid/study.db")
    (trial,) = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    with sqlite3.connect("runs/music_genre-grid/study.db") as db:
        beats = db.execute("select count(*) from trial_heartbeats join trials using (trial_id) where number = ?",
                           (trial.number,)).fetchone()[0]  # fmt: skip
    assert beats == 1 and "worker" in trial.user_attrs


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_a_later_search_in_the_same_process_gives_its_workers_its_own_environment(data_env, tmp_path, monkeypatch):
    """Workers are forks of a server that the process's first search started: each search still hands its workers
    its environment (here the data folder), not the one the server started with."""
    from tests.conftest import make_music_genre

    space = tmp_path / "seeds.yaml"
    space.write_text("seed_everything: {choices: [0, 1]}\n")
    args = ["sweep", "--config", CONFIG, "--space", str(space), "--workers", "2", "--trainer.max_steps", "2"]
    main([*args, "--study", "first"])
    smaller = tmp_path / "smaller"
    smaller.mkdir()
    make_music_genre(n=300).to_csv(smaller / "music_genre.csv", index=False)
    monkeypatch.setenv("GENRE_TORCH_DATA_DIR", str(smaller))
    main([*args, "--study", "second"])

    def flops(name: str) -> list[float]:
        study = optuna.load_study(study_name=name, storage=f"sqlite:///runs/{name}/study.db")
        return [t.user_attrs["dense_flops"] for t in study.trials if t.state == COMPLETE]

    first, second = flops("first"), flops("second")
    assert len(first) == len(second) == 2 and max(second) < min(first)  # half the rows: the second folder's data
