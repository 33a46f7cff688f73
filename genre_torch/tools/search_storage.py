"""Optuna storage for searches: SQLite by default, any RDB URL (PostgreSQL) for many machines; heartbeats.

SQLite is the embedded default rather than Optuna's journal file because only an RDB storage has
heartbeats, the library's way to find the trials of a killed worker (marked failed, queued again by
RetryHeartbeatStaleTrialCallback). A commit is atomic in SQLite's own journal, so a kill loses at most
the transaction in flight. One change makes it safe for several processes: Optuna claims a queued trial
by reading its state and then updating it, which on other databases is one SELECT ... FOR UPDATE. SQLite
has no row locks and Python's sqlite3 begins a transaction only at the first write, so two workers could
both read WAITING and both run the trial. Every transaction here starts with BEGIN IMMEDIATE (SQLAlchemy's
documented recipe for pysqlite), which takes SQLite's write lock first: claims are one at a time.

Workers started together on a new database all create Optuna's tables. A lock file orders our own SQLite
openers, but not other programs (optuna-dashboard) nor machines sharing a PostgreSQL server, where the losers
of that race fail with a duplicate-key or "already exists" error; opening is retried then, and the retry finds
the tables the winner made.

Optuna finds a trial stale by its heartbeat only. A worker stopped between Optuna's ask (the trial is RUNNING)
and the trial's first beat leaves a trial with none, which Optuna never fails: a resumed search would wait for it
forever. A signal there is held until the trial has begun (search.work, search_trial.run_trial); a kill there is
caught by `fail_trials_that_never_began`.
"""

from __future__ import annotations

import datetime
import fcntl
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from genre_torch.core.errors import GenreTorchError

State = optuna.trial.TrialState
STALE_BEATS = 3  # missed heartbeats after which a running trial is failed and queued again


def _begin_immediate(engine: sqlalchemy.engine.Engine) -> None:
    """Make every transaction of a pysqlite engine take the database's write lock when it begins."""

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's implicit BEGIN off; the event below begins

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection: sqlalchemy.engine.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners (table creation) are not reused


def _created_concurrently(error: sqlalchemy.exc.SQLAlchemyError) -> bool:
    """Whether opening failed because another process was creating the same tables or rows at that moment."""
    text = str(error).lower()
    return isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in text or "duplicate" in text


def _rdb_storage(url: str, attempts: int = 5, **kwargs: Any) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage, opened again when another process created its tables at the same moment."""
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except sqlalchemy.exc.SQLAlchemyError as e:
            if attempt == attempts - 1 or not _created_concurrently(e):
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def open_storage(url: str, heartbeat: int) -> optuna.storages.RDBStorage:
    """An RDB storage whose running trials beat every `heartbeat` s; stale after 3 beats, failed and retried."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise GenreTorchError(f"--storage {url!r} is not a database URL (sqlite:///FILE, postgresql://...)") from None
    kwargs: dict[str, Any] = {
        "heartbeat_interval": heartbeat,
        "grace_period": STALE_BEATS * heartbeat,
        "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(),
    }
    shown = parsed.render_as_string(hide_password=True)
    try:
        if parsed.drivername == "postgresql":  # psycopg 3 (the [tune] extra) whatever SQLAlchemy's default
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        if parsed.get_backend_name() != "sqlite":
            return _rdb_storage(url, **kwargs)
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:":
            raise GenreTorchError("an SQLite storage must be a file (sqlite:///FILE) that all workers share")
        if not path.parent.is_dir():  # only the file the user named is created
            raise GenreTorchError(f"folder {path.parent} of --storage {shown} does not exist; create it first")
        lock_path = path.with_name(path.name + ".lock")
        with open(lock_path, "w") as lock:  # two first starts create the tables once
            fcntl.flock(lock, fcntl.LOCK_EX)
            storage = _rdb_storage(url, engine_kwargs={"connect_args": {"timeout": 120}}, **kwargs)
            # the tables exist now, so later openers need no lock: a waiting one still holds this one's inode
            lock_path.unlink(missing_ok=True)
        _begin_immediate(storage.engine)
        return storage
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as e:
        raise GenreTorchError(f"cannot open storage {shown}: {str(e).splitlines()[0]}") from None


def fail_trials_that_never_began(
    study: optuna.Study, storage: optuna.storages.RDBStorage, heartbeat: int, started: float
) -> None:
    """Fail, and queue again as Optuna queues a stale trial, each running trial that never began (no `worker`
    attribute: its worker was killed between Optuna's ask and the objective), was asked before this command
    `started` (time.time()) and more than STALE_BEATS heartbeats ago. A trial asked by a live worker begins within
    milliseconds, but a loaded database can hold it for seconds: a trial of this command's own workers is never
    taken for dead."""
    now, grace = datetime.datetime.now(), datetime.timedelta(seconds=STALE_BEATS * heartbeat)
    before = datetime.datetime.fromtimestamp(started)
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(State.RUNNING,)):
        start = trial.datetime_start
        if "worker" in trial.user_attrs or start is None or start >= before or now - start < grace:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            if not storage.set_trial_state_values(trial_id, state=State.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, storage.get_trial(trial_id))


def open_study(
    storage: optuna.storages.RDBStorage,
    name: str,
    identity: dict[str, Any],
    cells: list | None,
    base: dict[str, Any] | None = None,
) -> None:
    """Create the study (and queue a grid's cells, or `base`: the parameters of the first trial of a search), or join
    it when its settings are the same as ours.

    Creation is atomic (unique study names), so exactly one process queues the cells; it marks the study
    ready at the end, and a process joining earlier waits for that before taking trials.
    """
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        _join(study, identity)
        return _requeue_lost_cells(study, cells)
    study.set_user_attr("identity", identity)
    for i, cell in enumerate(cells or []):
        study.enqueue_trial(cell, user_attrs={"cell": i})
    if base is not None:
        study.enqueue_trial(base, user_attrs={"base": True})
    study.set_user_attr("ready", True)


def _requeue_lost_cells(study: optuna.Study, cells: list | None) -> None:
    """Queue again each grid cell whose trials all failed with no retry queued (an error, or a worker stopped
    between failing a stale trial and queuing its retry): resuming runs every cell once."""
    live = (State.COMPLETE, State.PRUNED, State.RUNNING, State.WAITING)
    trials = study.get_trials(deepcopy=False)
    alive = {t.user_attrs.get("cell") for t in trials if t.state in live}
    failed = {t.user_attrs["cell"] for t in trials if t.state == State.FAIL and "cell" in t.user_attrs}
    for i in sorted(failed - alive):
        if cells is not None and i < len(cells):
            study.enqueue_trial(cells[i], user_attrs={"cell": i})


def _join(study: optuna.Study, identity: dict[str, Any], wait: float = 120.0) -> None:
    """Wait until the study's creator has queued its cells, then check that we search the same thing."""
    deadline, seen = time.monotonic() + wait, -1
    while not study.user_attrs.get("ready"):
        queued = len(study.get_trials(deepcopy=False))
        if queued != seen:  # still being filled: wait longer
            deadline, seen = time.monotonic() + wait, queued
        if time.monotonic() > deadline:
            raise GenreTorchError(
                f"study {study.study_name} was created but never marked ready (its creator stopped while queuing "
                f"the grid); delete it (optuna delete-study --study-name {study.study_name} --storage URL) "
                "or pass another --study"
            )
        time.sleep(0.5)
    if study.user_attrs.get("identity") != identity:
        raise GenreTorchError(
            f"study {study.study_name} exists with other fit options or another search space; "
            "resume it with the same ones, or pass another --study"
        )
