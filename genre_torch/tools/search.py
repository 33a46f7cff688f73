"""`genre-torch tune` and `genre-torch sweep`: Optuna studies of `fit` configs on a shared storage, N workers.

    genre-torch tune --config CONFIG --space SPACE.yaml [--trials 30] [--timeout S] [--workers N]
        [--storage URL] [--study NAME] [--out FILE] [--heartbeat 10] [any --trainer.* --model.* --data.* ...]
    genre-torch sweep --config CONFIG --space GRID.yaml [--workers N] [--limit K] [...the same options]

tune: TPE on validation accuracy with median pruning; the best trial is written as a complete config
(default <runs_dir>/<study>/best.yaml; `genre-torch fit --config` retrains and tests it once). sweep: every
cell of the grid exactly once (queued in the space file's order, the last key varying fastest, and claimed one by
one: list the costliest choices first so that the workers finish together), then a markdown summary.
The search space format is in genre_torch/tools/search_space.py; examples in configs/spaces/. Options after
the search's own are `fit` options, fixed for every trial. The test split never reaches a model here.

Storage: by default SQLite at <runs_dir>/<study>/study.db; `--storage postgresql://user@host/db` (or any
Optuna RDB URL) lets workers on several machines join one study. Running the same command again resumes
the study: finished trials are kept, and a trial whose worker died (no heartbeat for 3 x --heartbeat
seconds) is marked failed and queued again. Every trial is a TensorBoard run with its options and final
validation metrics (HParams tab): `tensorboard --logdir <runs_dir>/<study>`; the study itself:
`optuna-dashboard sqlite:///<runs_dir>/<study>/study.db` (pip install optuna-dashboard).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import sys
import time
import warnings
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

try:
    import optuna
except ImportError:  # the extra is optional; say how to get it
    from genre_torch.core.errors import GenreTorchError

    raise GenreTorchError("tune and sweep need Optuna: pip install -e '.[tune]'") from None
import yaml

from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training import signals
from genre_torch.core.training.safe_files import write_error
from genre_torch.tools import parsers
from genre_torch.tools.search_space import SearchSpace, covering, option_args
from genre_torch.tools.search_storage import fail_trials_that_never_began, open_storage, open_study
from genre_torch.tools.search_summary import study_summary, summary

State = optuna.trial.TrialState


@dataclasses.dataclass
class Job:
    """What a worker process needs to run trials of one study (picklable for spawned workers)."""

    storage: str
    study: str
    space: dict[str, Any]
    fit_args: list[str]
    folder: str
    trials: int | None  # None: a grid
    timeout: float | None
    heartbeat: int
    started: float  # time.time() as the command began: a trial asked before it and never begun was left by another
    env: dict[str, str]  # the environment as the workers start (a forkserver keeps the one it started with)


def parse(argv: list[str], grid: bool) -> tuple[Any, list[str]]:
    """The search's own options and the remaining `fit` options."""
    name = "sweep" if grid else "tune"
    parser = parsers.sweep() if grid else parsers.tune()
    args, fit_args = parser.parse_known_args(argv)
    counts = {"workers": args.workers, "heartbeat": args.heartbeat, "trials": getattr(args, "trials", 1)}
    if getattr(args, "limit", None) is not None:
        counts["limit"] = args.limit
    for option, value in counts.items():
        if value < 1:
            parser.error(f"--{option} must be at least 1, got {value}")
    if fit_args and fit_args[0] in ("fit", "validate", "test"):
        parser.error(f"put fit options after `{name}` without a subcommand (drop `{fit_args[0]}`)")
    return args, fit_args


def search(argv: list[str], grid: bool) -> None:
    """Create or resume the study, run its trials on --workers processes, then report the result."""
    args, fit_args = parse(argv, grid)
    space = SearchSpace.load(args.space)
    cells = space.grid()[: args.limit] if grid else None
    keys = {p.key for p in space.params}
    searched = [a for a in fit_args if a.startswith("--") and a[2:].split("=")[0] in keys]
    if searched:
        raise GenreTorchError(f"{searched} are both fixed on the command line and searched in {args.space}")
    sample = space.options(cells[0]) if cells else space.first()
    from genre_torch.tools import search_trial  # the trial code, imported once the usage is checked

    config = search_trial.resolved_config([*fit_args, *option_args(sample)])  # bad options fail before any worker
    # every value of the space is built once before any trial starts: a bad one in a later cell fails here
    variants = covering([space.options(c) for c in cells]) if cells is not None else space.cover()
    search_trial.check_options(fit_args, variants, args.space)
    study_name = args.study or "-".join([*_config_names(fit_args), Path(args.space).stem])
    folder = Path(config.get("runs_dir") or "runs").resolve() / study_name
    url = args.storage or f"sqlite:///{folder / 'study.db'}"
    if args.storage is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(folder, e) from None
    identity = {"fit_args": fit_args, "space": space.raw, "cells": len(cells) if grid else None}
    trials = None if grid else args.trials
    # a search starts from the base config itself (when its values lie in the space): its best is never worse
    base = None if grid else space.params_of({k: _lookup(search_trial.resolved_config(fit_args), k) for k in keys})
    started = time.time()
    open_study(open_storage(url, args.heartbeat), study_name, identity, cells, base)
    job = Job(url, study_name, space.raw, fit_args, str(folder), trials, getattr(args, "timeout", None), args.heartbeat,
              started, dict(os.environ))  # fmt: skip
    print(f"study {study_name} on {_shown(url)}; runs: tensorboard --logdir {folder}", file=sys.stderr)
    try:
        run_workers(job, args.workers)
    except (KeyboardInterrupt, SystemExit, signals.Interrupted):  # Lightning ends a SIGTERM as SystemExit
        if signals.received() is None:
            raise
        hint = "during the search; finished trials are kept: run the same command again to resume the study"
        raise signals.Interrupted(signals.received(), hint) from None
    study = optuna.load_study(study_name=study_name, storage=open_storage(url, args.heartbeat))
    report_grid(study, space, args.out or folder / "summary.md") if grid else report_best(study, space, job, args.out)


class _QuietSurplus(logging.Filter):
    """Drops Optuna's report of a trial that stopped as Surplus: a traceback, then "failed with value None"."""

    def __init__(self) -> None:
        super().__init__()
        self.trials: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the records of a Surplus trial."""
        from genre_torch.tools.search_trial import Surplus

        words = record.getMessage().split()
        number = words[1] if len(words) > 1 and words[0] == "Trial" else None
        if record.exc_info and isinstance(record.exc_info[1], Surplus) and number:
            self.trials.add(number)
            return False
        return number not in self.trials


def quiet_surplus() -> None:
    """Keep Optuna from printing a traceback for each Surplus trial (two workers racing for the last one)."""
    for handler in logging.getLogger("optuna").handlers:  # Optuna's own stderr handler
        if not any(isinstance(f, _QuietSurplus) for f in handler.filters):
            handler.addFilter(_QuietSurplus())


def _lookup(config: dict[str, Any], key: str) -> Any:
    """The value of a dotted fit option in a resolved config (through class_path / init_args), or None."""
    node: Any = config
    for part in key.split("."):
        if isinstance(node, dict) and part not in node and "init_args" in node:
            node = node["init_args"]
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def work(job: Job) -> None:
    """A worker: claim and run trials until the study has its trials (or grid cells) finished or time is up."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    quiet_surplus()
    sampler = optuna.samplers.TPESampler(constant_liar=True)  # workers running together avoid the same point
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5)
    if job.trials is None:
        sampler, pruner = optuna.samplers.RandomSampler(), optuna.pruners.NopPruner()  # queued cells, to the end
    storage = open_storage(job.storage, job.heartbeat)
    study = optuna.load_study(study_name=job.study, storage=storage, sampler=sampler, pruner=pruner)
    space = SearchSpace(job.space)
    from genre_torch.tools import search_trial

    objective = partial(
        search_trial.run_trial, fit_args=job.fit_args, space=space, folder=Path(job.folder), trials=job.trials
    )
    start, waiting = time.monotonic(), False
    while job.timeout is None or time.monotonic() - start < job.timeout:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial: failed and queued again
        fail_trials_that_never_began(study, storage, job.heartbeat, job.started)  # or one killed before it began
        count = Counter(t.state for t in study.get_trials(deepcopy=False))
        finished = count[State.COMPLETE] + count[State.PRUNED]
        started = finished + count[State.RUNNING] + count[State.WAITING]
        if count[State.WAITING] or (job.trials is not None and started < job.trials):
            waiting = False
            signals.check()  # a signal whose exception Python dropped (in a library's finaliser): no next trial
            signals.defer(True)  # held during Optuna's ask, before the trial's heartbeat: run_trial raises it
            try:
                study.optimize(objective, n_trials=1, catch=(search_trial.Surplus,), gc_after_trial=True)
            finally:
                signals.defer(False)
            signals.check()
        elif count[State.RUNNING]:  # another worker's trials: they finish, or go stale and are queued again
            if not waiting:
                print(f"waiting for {count[State.RUNNING]} running trial(s) of other workers", file=sys.stderr)
            waiting = True
            time.sleep(min(job.heartbeat, 2))
        else:
            return


# what a trial imports: the forkserver imports it once, and every worker is a fork of it
PRELOAD = [
    "genre_torch.cli",
    "genre_torch.tools.search",
    "genre_torch.tools.search_trial",
    "genre_torch.core.data.datamodule",
    "genre_torch.core.training.module",
    "genre_torch.tools.report",
]


def _work_process(job: Job) -> None:
    """Entry point of a worker process: a GenreTorchError is one line on stderr and exit code 2.

    A signal ends it quietly with 128 + its number (the process running the search says it in one line); its trial
    stays running in the study, so that a resumed search retries it once its heartbeat is stale.
    """
    from genre_torch.cli import quiet_console

    os.environ.clear()
    os.environ.update(job.env)
    quiet_console()  # as `genre-torch` itself: one-line warnings, no Lightning banners
    signals.watch()
    try:
        work(job)
    except GenreTorchError as e:
        print(f"genre-torch: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except (KeyboardInterrupt, SystemExit, signals.Interrupted) as e:
        stop = signals.interruption(e)
        if stop is None:
            raise
        raise SystemExit(stop.exit_code) from None


def run_workers(job: Job, workers: int) -> None:
    """Run `workers` worker processes (or this process for one); stop them all when one fails."""
    if workers == 1:
        return work(job)
    context = _context()
    procs = [context.Process(target=_work_process, args=(job,), name=f"worker {i}") for i in range(workers)]
    for p in procs:
        p.start()
    try:
        running = list(procs)
        while running:
            multiprocessing.connection.wait([p.sentinel for p in running])
            for p in [p for p in running if p.exitcode is not None]:
                running.remove(p)
                if p.exitcode != 0:
                    raise GenreTorchError(f"{p.name} stopped with exit code {p.exitcode}; rerun to resume the study")
    finally:
        for p in procs:
            if p.exitcode is None:
                p.terminate()
            p.join()


def _context() -> multiprocessing.context.BaseContext:
    """Where workers come from: forks of a server that imported PRELOAD once, else fresh interpreters.

    Not forks of this process: it may hold a CUDA context, database connections or threads. The forkserver has
    only imported modules (none of which initialises CUDA), as PyTorch's multiprocessing notes allow for CUDA.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():  # Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # used when the server starts: the first search of this process
    return context


def report_best(study: optuna.Study, space: SearchSpace, job: Job, out: Path | None) -> None:
    """Write the best trial as a complete `genre-torch fit` config and say where."""
    done = study.get_trials(deepcopy=False, states=(State.COMPLETE,))
    if not done:
        raise GenreTorchError(f"study {job.study} has no completed trial yet (raise --timeout or --trials)")
    best = max(done, key=lambda t: (t.value, -t.number))
    from genre_torch.tools.search_trial import resolved_config

    config = resolved_config([*job.fit_args, *option_args(space.options(best.params))])
    config["seed_everything"] = best.user_attrs.get("seed", config.get("seed_everything"))
    from genre_torch.core.training.safe_files import atomic_path

    target = out or Path(job.folder) / "best.yaml"
    header = f"# genre-torch tune: study {job.study}, best of {len(done)} completed trials: trial {best.number}, "
    header += f"validation accuracy {best.value:.4f}\n# genre-torch fit --config {target}\n"
    with atomic_path(target) as tmp:
        tmp.write_text(header + yaml.safe_dump(config, sort_keys=False))
    summary_path = Path(job.folder) / "summary.md"
    with atomic_path(summary_path) as tmp:
        tmp.write_text(study_summary(study))
    print(f"best validation accuracy {best.value:.4f} (trial {best.number}); config written to {target}")
    print(f"the study's trials, best first: {summary_path}")


def report_grid(study: optuna.Study, space: SearchSpace, out: Path) -> None:
    """Print the sweep's markdown summary and write it to `out`."""
    from genre_torch.core.training.safe_files import atomic_path

    text = summary(study, space)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    print(text, end="")


def _config_names(fit_args: list[str]) -> list[str]:
    """The names (file stems) of the --config files among the fit options."""
    names = []
    for i, arg in enumerate(fit_args):
        if arg in ("--config", "-c") and i + 1 < len(fit_args):
            names.append(Path(fit_args[i + 1]).stem)
        elif arg.startswith("--config="):
            names.append(Path(arg.split("=", 1)[1]).stem)
    return names


def _shown(url: str) -> str:
    """A storage URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def tune(argv: list[str]) -> None:
    """Entry point of `genre-torch tune`."""
    search(argv, grid=False)


def sweep(argv: list[str]) -> None:
    """Entry point of `genre-torch sweep`."""
    search(argv, grid=True)
