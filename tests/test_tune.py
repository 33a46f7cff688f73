"""genre-torch tune: search spaces; a study on validation only whose best config `fit` reproduces; two worker
processes on one storage without duplicate trials; a study whose worker is SIGKILLed resumes (SQLite and a real
PostgreSQL server)."""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from genre_torch.cli import main, run_cli  # noqa: E402
from genre_torch.core.errors import GenreTorchError  # noqa: E402
from genre_torch.core.training.module import GenreClassifier  # noqa: E402
from genre_torch.tools.search_space import SearchSpace, option_args  # noqa: E402
from genre_torch.tools.search_storage import open_storage  # noqa: E402
from tests.conftest import unavailable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "music_genre.yaml")
SPACE = {
    "optimizer.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
    "model.backbone.hidden_dims": {"choices": [[8], [16, 8]]},
}
FAST = ["--trainer.max_epochs", "3", "--data.batch_size", "64"]
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def write_space(folder: Path, space: dict = SPACE) -> str:
    path = folder / "space.yaml"
    path.write_text(json.dumps(space))  # JSON is YAML
    return str(path)


def load(name: str, url: str | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url or f"sqlite:///runs/{name}/study.db")


def test_space_kinds_labels_and_conditions() -> None:
    space = SearchSpace(
        {
            "model.backbone": {"choices": ["MLP", "PLRMLP"]},
            "optimizer.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
            "data.batch_size": {"low": 32, "high": 256, "step": 32},
            "model.backbone.hidden_dims": {"choices": [[8], [16, 8]]},
            "model.backbone.sigma": {"low": 0.01, "high": 1.0, "when": {"model.backbone": "PLRMLP"}},
            "model.backbone.d_embedding": {"value": 16, "when": {"model.backbone": ["PLRMLP"]}},
        }
    )
    assert [p.kind for p in space.params] == ["categorical", "float", "int", "categorical", "float", "fixed"]
    assert space.params[3].distribution.choices == ("[8]", "[16, 8]")  # Optuna stores the JSON text of a list
    params = {
        "model.backbone": "PLRMLP",
        "optimizer.lr": 1e-3,
        "data.batch_size": 64,
        "model.backbone.hidden_dims": "[16, 8]",
    }
    values = space.suggest(optuna.trial.FixedTrial({**params, "model.backbone.sigma": 0.1}))
    assert values["model.backbone.hidden_dims"] == [16, 8] and values["model.backbone.d_embedding"] == 16
    plain = space.suggest(optuna.trial.FixedTrial({**params, "model.backbone": "MLP"}))
    assert "model.backbone.sigma" not in plain and "model.backbone.d_embedding" not in plain
    assert option_args({"model.backbone": "MLP", "model.backbone.hidden_dims": [16, 8], "x.flag": True}) == [
        "--model.backbone", "MLP", "--model.backbone.hidden_dims", "[16, 8]", "--x.flag", "true"
    ]  # fmt: skip


def test_grid_has_every_combination_of_applicable_choices() -> None:
    space = SearchSpace(
        {
            "model.backbone": {"choices": ["MLP", "PLRMLP"]},
            "model.backbone.d_embedding": {"choices": [8, 16], "when": {"model.backbone": "PLRMLP"}},
            "seed_everything": {"choices": [0, 1]},
        }
    )
    cells = space.grid()
    assert len(cells) == 2 + 4 and len({json.dumps(c, sort_keys=True) for c in cells}) == 6
    assert {"model.backbone": "MLP", "seed_everything": 1} in cells
    with pytest.raises(GenreTorchError, match="ranges"):
        SearchSpace({"optimizer.lr": {"low": 0.1, "high": 1.0}}).grid()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1, 2], "expected a mapping"),
        ({"optimizer.lr": {"low": "1e-3", "high": 0.1}}, "must be numbers"),
        ({"optimizer.lr": {"low": 0.1, "high": 0.01}}, "is above high"),
        ({"optimizer.lr": {"low": 0.0, "high": 0.1, "log": True}}, "optimizer.lr"),
        ({"model.arch": {"choices": []}}, "non-empty list"),
        ({"model.arch": {"choices": ["mlp"], "bogus": 1}}, "expected a mapping"),
        ({"optimizer.lr": {"low": 0.1, "high": 1.0, "when": {"model.arch": "mlp"}}}, "must name entries above"),
        ({"model.arch": {"type": "ordinal", "choices": [1]}}, "unknown type"),
    ],
)
def test_bad_space_is_a_one_line_error(raw: object, message: str) -> None:
    with pytest.raises(GenreTorchError, match=message) as info:
        SearchSpace(raw, "space.yaml")
    assert "\n" not in str(info.value)


def test_bad_tune_input_is_exit_2_with_one_line(data_env, tmp_path, capsys) -> None:
    space = write_space(tmp_path)
    cases = [
        (["--config", CONFIG], "--space"),
        (["--config", CONFIG, "--space", str(tmp_path / "none.yaml")], "does not exist"),
        (["--config", CONFIG, "--space", space, "--model.nope", "1"], "fit options: "),
        (
            ["--config", CONFIG, "--space", space, "--optimizer.lr", "0.1"],
            "both fixed on the command line and searched",
        ),
        (["--config", CONFIG, "--space", space, "--trials", "0"], "--trials must be at least 1"),
        (["--config", CONFIG, "--space", space, "--storage", "nonsense"], "not a database URL"),
        (["--config", CONFIG, "--space", space, "--timeout", "0"], "has no completed trial yet"),  # creates it
        (["--config", CONFIG, "--space", space, "--data.batch_size", "32"], "exists with other fit options"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as info:
            main(["tune", *args])
        stderr = capsys.readouterr().err
        err = [line for line in stderr.splitlines() if "error" in line]
        assert info.value.code == 2 and len(err) == 1 and message in err[0] and "Traceback" not in stderr, stderr
    assert not Path("runs").exists() or not list(Path("runs").rglob("trial_*"))  # nothing ran


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_study_on_validation_only_writes_a_config_that_fit_reproduces(data_env, tmp_path, monkeypatch, capsys) -> None:
    with monkeypatch.context() as patch:  # a test step during the search would fail the trial
        patch.setattr(GenreClassifier, "test_step", lambda *a: pytest.fail("the test split reached a model"))
        main(["tune", "--config", CONFIG, "--space", write_space(tmp_path), "--trials", "3", *FAST])
    study = load("music_genre-space")
    assert len(study.get_trials(states=FINISHED)) == 3
    best = Path("runs/music_genre-space/best.yaml")  # next to the runs; nothing written in configs/
    out = capsys.readouterr().out
    assert f"config written to {best.resolve()}" in out
    summary = best.with_name("summary.md")  # the study's trials, best first, beside the config
    assert f"best first: {summary.resolve()}" in out
    text = summary.read_text()
    assert text.startswith("Study `music_genre-space`: 3 trials (") and "test split was not used" in text
    assert f"| 1 | {study.best_trial.number} | {100 * study.best_value:.2f} | " in text

    cli = run_cli(["fit", "--config", str(best)])  # retrains the best trial's config, then tests it once
    assert cli.final_metrics["val/acc"] == pytest.approx(study.best_value, abs=1e-6)
    params = study.best_params
    assert cli.config.fit.optimizer.init_args.lr == params["optimizer.lr"]
    assert cli.config.fit.model.init_args.backbone.init_args.hidden_dims == json.loads(
        params["model.backbone.hidden_dims"]
    )

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for trial in study.trials:  # every trial is a run with its options and final metrics (HParams tab)
        events = EventAccumulator(str(Path(trial.user_attrs["run"]) / "final")).Reload()
        assert {"val/acc", "z_fit/best_epoch", "z_fit/epochs", "z_fit/pruned"} <= set(events.Tags()["scalars"])
        assert events.Scalars("val/acc")[-1].value == pytest.approx(trial.user_attrs["val_acc"])


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """A throw-away PostgreSQL server (initdb + pg_ctl, as the postgres user when root) on a free local port."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name.split(".")[0]))
    bins += [str(Path(p).parent) for p in [shutil.which("initdb")] if p]
    if not bins or not Path(bins[-1], "pg_ctl").exists():
        unavailable("the PostgreSQL tests need initdb and pg_ctl (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg (the [tune] extra) is needed for postgresql:// storage")
    initdb, pg_ctl = str(Path(bins[-1], "initdb")), str(Path(bins[-1], "pg_ctl"))
    folder = Path(tempfile.mkdtemp(prefix="genre_torch_pg_"))  # under /tmp: reachable by the postgres user
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root without a postgres user to start PostgreSQL as")
        if not shutil.which("runuser"):
            unavailable("running as root without runuser to start PostgreSQL as the postgres user")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data, options = folder / "data", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    steps = [
        [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        [pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "-t", "60", "start"],
    ]
    for step in steps:
        done = subprocess.run([*as_postgres, *step], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            unavailable(f"could not start PostgreSQL ({Path(step[0]).name}): {(done.stderr or done.stdout)[-500:]}")
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def storage_args(backend: str, request: pytest.FixtureRequest) -> tuple[list[str], str | None]:
    if backend == "sqlite":
        return [], None
    url = request.getfixturevalue("postgres_url")
    return ["--storage", url], url


def _open_once(url: str, ours: bool, errors: multiprocessing.Queue) -> None:
    """Open a storage as a worker (open_storage) or as another program (Optuna alone, no lock); report failures."""
    try:
        open_storage(url, 1) if ours else optuna.storages.RDBStorage(url)
    except Exception as e:
        if ours:
            errors.put(f"{type(e).__name__}: {e}"[:300])


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_workers_starting_together_on_a_new_database_all_open_it(tmp_path, backend, request) -> None:
    # Every opener of a new database creates Optuna's tables; the losers of that race got a duplicate-key or
    # "already exists" error (PostgreSQL: 3 of 4 workers, every time; SQLite beside optuna-dashboard: half).
    fork = multiprocessing.get_context("fork")
    for round in range(8):
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path}/round{round}.db"
        else:
            server = request.getfixturevalue("postgres_url")
            psycopg = pytest.importorskip("psycopg")
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE race{round}")
            url = server.rsplit("/", 1)[0] + f"/race{round}"
        errors = fork.Queue()
        openers = [fork.Process(target=_open_once, args=(url, ours, errors)) for ours in (True, False, True, False)]
        for p in openers:
            p.start()
        for p in openers:
            p.join(60)
        reports = []
        while not errors.empty():
            reports.append(errors.get())
        assert reports == [] and [p.exitcode for p in openers] == [0] * 4, f"round {round}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_run_one_study_without_duplicates(data_env, tmp_path, backend, request) -> None:
    extra, url = storage_args(backend, request)
    name = f"two_workers_{backend}"
    main(["tune", "--config", CONFIG, "--space", write_space(tmp_path), "--study", name, "--trials", "8",
          "--workers", "2", *extra, *FAST])  # fmt: skip
    trials = load(name, url).trials
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == 8  # the study's 8, not 8 per worker
    assert all(t.state in FINISHED or t.user_attrs.get("surplus") for t in trials)
    assert len({t.user_attrs["run"] for t in finished}) == 8  # each trial trained once, in its own run
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == 8  # no configuration twice
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both processes took trials


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_study_killed_mid_trial_resumes(data_env, tmp_path, backend, request, warm) -> None:
    extra, url = storage_args(backend, request)
    name = f"killed_{backend}"
    args = ["tune", "--config", CONFIG, "--space", write_space(tmp_path), "--study", name, "--trials", "4",
            "--heartbeat", "1", "--trainer.max_epochs", "40", "--early_stopping.patience", "100",
            "--data.batch_size", "32", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen([warm["python"], "-m", "genre_torch.cli", *args], env=env, stdout=log, stderr=log)
    deadline, killed = time.monotonic() + 300, None
    try:
        while killed is None and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
            try:
                trials = load(name, url).trials
            except Exception:  # the study is not created yet
                continue
            running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
            # mid-trial: it reported an epoch, so its heartbeat (recorded as it started) is in the study
            if any(t.state in FINISHED for t in trials) and running and running[0].intermediate_values:
                os.kill(running[0].user_attrs["worker"], signal.SIGKILL)  # the process running the trial
                killed = running[0]
    finally:
        worker.kill()
        worker.wait()
    assert killed is not None, (tmp_path / "worker.log").read_text()[-3000:]
    before = {t.number: t.value for t in load(name, url).trials if t.state in FINISHED}

    main([*args, "--timeout", "300"])  # the same command again: resumes (--timeout: a lost trial fails, not hangs)
    trials = load(name, url).trials
    assert {t.number: t.value for t in trials if t.number in before} == before  # finished trials kept
    assert trials[killed.number].state == optuna.trial.TrialState.FAIL  # no heartbeat: marked failed...
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].state in FINISHED and retry[0].params == killed.params  # ...and retried
    assert len([t for t in trials if t.state in FINISHED]) == 4


def test_a_surplus_trial_prints_no_traceback(monkeypatch) -> None:
    """Two workers racing for a study's last trial: the loser's trial stops as Surplus without Optuna's traceback."""
    import io
    import logging

    from genre_torch.tools import search
    from genre_torch.tools.search_trial import Surplus

    def surplus(trial: optuna.Trial) -> float:
        raise Surplus("the study already has 1 trials")

    optuna.logging.get_logger("optuna")  # Optuna's stderr handler exists from here on
    handler = next(h for h in logging.getLogger("optuna").handlers if type(h) is logging.StreamHandler)
    monkeypatch.setattr(handler, "stream", io.StringIO())
    monkeypatch.setattr(handler, "filters", [])  # taken back when the test ends
    study = optuna.create_study()
    study.optimize(surplus, n_trials=1, catch=(Surplus,))
    assert "Traceback" in handler.stream.getvalue()  # Optuna's own report, before
    handler.stream = io.StringIO()
    search.quiet_surplus()
    study.optimize(surplus, n_trials=1, catch=(Surplus,))
    study.optimize(lambda trial: 1.0, n_trials=1)
    err = handler.stream.getvalue()
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert "Trial 1" not in err and "Traceback" not in err and "Trial 2 finished" in err


def test_a_search_starts_from_the_base_config(data_env, tmp_path) -> None:
    """The first trial is the base config's own values when they lie in the space, so the best config found is never
    worse on validation than the one the search started from; a base outside the space adds no trial."""
    from genre_torch.tools.search_space import SearchSpace

    space = {
        "optimizer.lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
        "model.backbone.dropout": {"low": 0.0, "high": 0.5},
    }
    main(["tune", "--config", CONFIG, "--space", write_space(tmp_path, space), "--trials", "2", *FAST])
    first = min(load("music_genre-space").trials, key=lambda t: t.number)
    assert first.params == {"optimizer.lr": 0.01, "model.backbone.dropout": 0.0} and first.user_attrs["base"]
    assert SearchSpace(SPACE).params_of({"optimizer.lr": 0.01, "model.backbone.hidden_dims": [128, 64, 32]}) is None
    assert SearchSpace(SPACE).params_of({"optimizer.lr": 0.01, "model.backbone.hidden_dims": [16, 8]}) == {
        "optimizer.lr": 0.01,
        "model.backbone.hidden_dims": "[16, 8]",
    }
    assert SearchSpace({"n": {"low": 1, "high": 9, "step": 2}}).params_of({"n": 4}) is None  # off its step
