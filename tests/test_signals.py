"""SIGTERM and SIGINT: one line naming the signal and how to go on, exit status 128 + signum, nothing partial."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import torch

from tests.trained import trained

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")
FIT = ["fit", "--config", CONFIG, "--trainer.max_epochs", "500", "--early_stopping.patience", "1000"]


def with_callback(setup: str, callback: str, args_from: int) -> str:
    """A script running `genre-torch` (arguments: sys.argv[args_from:]) with `callback` added to the Trainer."""
    imports = "import os, signal, sys, time, pytorch_lightning as pl\nfrom genre_torch import cli\n"
    imports += "from genre_torch.core.training.lightning_cli import GenreCLI\n"
    add = (
        "original = GenreCLI.instantiate_trainer\n"
        "def instantiate_trainer(self, **kwargs):\n"
        f"    kwargs['callbacks'] = [*kwargs.get('callbacks', []), {callback}()]\n"
        "    return original(self, **kwargs)\n"
        "GenreCLI.instantiate_trainer = instantiate_trainer\n"
    )
    return f"{imports}{setup}\n{add}cli.main(sys.argv[{args_from}:])\n"


# sends `signum` to its own process from inside a Lightning hook, so the moment is exact
SELF_SIGNAL = with_callback(
    """
hook, signum = sys.argv[1], getattr(signal, sys.argv[2])

class SelfSignal(pl.Callback):
    pass

setattr(SelfSignal, hook, lambda self, *args: os.kill(os.getpid(), signum))
""",
    "SelfSignal",
    3,
)


def wait_for(condition, proc: subprocess.Popen, deadline: float = 120.0) -> None:
    """Poll `condition` until it holds; fail if the process ends first or the deadline passes."""
    end = time.monotonic() + deadline
    while not condition():
        assert proc.poll() is None, f"ended early ({proc.returncode}): {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.05)


@pytest.fixture
def python(warm: dict[str, Path]) -> str:
    """`python` for the commands of these tests: a fork of a warm process, for what a command does on a signal
    (tests/zygote.py passes the signal on); startup itself is tested with the real interpreter elsewhere."""
    return str(warm["python"])


@pytest.fixture(autouse=True)
def stacks_on_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands these tests start print every thread's stack on SIGABRT (`finish`)."""
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    """The stderr of a process told to stop; one still running after `timeout` fails with its Python stacks."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler (PYTHONFAULTHANDLER) prints every thread's stack
        pytest.fail(f"still running {timeout:.0f} s after the signal:\n{proc.communicate(timeout=30)[1][-6000:]}")


def the_line(stderr: str) -> str:
    """The single line of stderr that is not a data warning; no traceback."""
    lines = [line for line in stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_fit_ends_with_one_line_and_128_plus_signum(python, data_env, signum: int) -> None:
    last = Path("checkpoints/music_genre/version_0/last.ckpt")
    cmd = [python, "-m", "genre_torch.cli", *FIT]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(last.is_file, proc)
        proc.send_signal(signum)
        err = finish(proc)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum
    line = the_line(err)
    name = signal.Signals(signum).name
    match = re.fullmatch(rf"genre-torch: interrupted by {name} after epoch (\d+); resume with --ckpt_path (\S+)", line)
    assert match, line
    assert Path(match.group(2)) == last
    assert torch.load(last, weights_only=True)["epoch"] == int(match.group(1)) - 1  # the last completed epoch


SWALLOWED = with_callback(
    """
class Swallow(pl.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            try:  # code that catches everything, as a finalizer does, or in a critical section of its own
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
                print("the hook finished its work")
            except BaseException:
                pass
""",
    "Swallow",
    1,
)


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_a_sigint_during_fit_is_raised_at_the_next_batch_not_inside_the_code_it_landed_in(python, data_env) -> None:
    args = ["fit", "--config", CONFIG, "--trainer.max_epochs", "4", "--early_stopping.patience", "100"]
    proc = subprocess.run([python, "-c", SWALLOWED, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130 and "the hook finished its work" in proc.stdout
    assert the_line(proc.stderr).startswith("genre-torch: interrupted by SIGINT after epoch 1; resume with")


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_a_fit_interrupted_before_its_first_checkpoint_leaves_nothing(python, data_env) -> None:
    args = [python, "-c", SELF_SIGNAL, "on_train_batch_start", "SIGINT", *FIT]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130
    assert the_line(proc.stderr) == (
        "genre-torch: interrupted by SIGINT before the first checkpoint; nothing was kept: run the same command again"
    )
    assert sorted(os.listdir()) == []  # no runs/ or checkpoints/ folder


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
@pytest.mark.parametrize("sub", ["validate", "test"])
def test_sigterm_during_an_evaluation_is_not_a_result(python, data_env, sub: str) -> None:
    ckpt = trained("music_genre").ckpt
    hook = f"on_{sub.replace('validate', 'validation')}_batch_start"
    args = [python, "-c", SELF_SIGNAL, hook, "SIGTERM", sub, "--config", CONFIG, "--ckpt_path", str(ckpt)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 143
    assert the_line(proc.stderr).startswith("genre-torch: interrupted by SIGTERM before it finished")
    assert "accuracy" not in proc.stdout and sorted(os.listdir()) == []


SEARCH_CASES = [(signal.SIGTERM, "1"), (signal.SIGINT, "2")]


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
@pytest.mark.parametrize(("signum", "workers"), SEARCH_CASES, ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_sweep_ends_with_one_line_and_128_plus_signum(
    python, data_env, signum: int, workers: str
) -> None:
    space = Path("grid.yaml")
    space.write_text("seed_everything: {choices: [0, 1, 2]}\n")
    args = ["sweep", "--config", CONFIG, "--space", str(space), "--workers", workers, "--heartbeat", "1"]
    args += ["--trainer.max_epochs", "60", "--early_stopping.patience", "1000"]
    cmd = [python, "-m", "genre_torch.cli", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(Path("runs").glob("*/trial_*/music_genre/version_0/events.*")), proc)
        proc.send_signal(signum)
        err = finish(proc)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum
    lines = [line for line in err.splitlines() if line.startswith("genre-torch") or "Traceback" in line]
    assert lines == [
        f"genre-torch: interrupted by {signal.Signals(signum).name} during the search; finished trials are kept: "
        "run the same command again to resume the study"
    ], err[-3000:]
    from genre_torch.cli import main

    main([*args, "--timeout", "300"])  # resumed: the interrupted trial is retried once its heartbeat is stale, every
    # cell runs once (--timeout: a trial that is never retried fails the test instead of hanging it)
    optuna = pytest.importorskip("optuna")
    study = optuna.load_study(study_name="music_genre-grid", storage="sqlite:///runs/music_genre-grid/study.db")
    done = [t.user_attrs["cell"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(done) == [0, 1, 2]


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_under_slurm_lightnings_requeue_signal_still_requeues(python, data_env, tmp_path) -> None:
    """SIGUSR1 (SLURM's warning before the time limit): Lightning saves an hpc checkpoint and requeues the job."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "genre", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0"}
    slurm |= {"SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}
    env = {**os.environ, **slurm, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    # Lightning's requeue handler closes the loggers from inside the signal handler: a signal that lands while the
    # main thread is writing a TensorBoard event deadlocks on the writer's lock. Small batches make the epochs long
    # beside their one write, so the signal lands in a training step (where SLURM's would), not in that write.
    cmd = [python, "-m", "genre_torch.cli", *FIT, "--data.batch_size", "4"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(Path("checkpoints/music_genre/version_0/last.ckpt").is_file, proc)
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: (tmp_path / "scontrol.log").is_file() and Path("hpc_ckpt_1.ckpt").is_file(), proc)
        assert proc.poll() is None  # the requeue does not end the run: SLURM ends it with SIGTERM
        proc.send_signal(signal.SIGTERM)
        err = finish(proc)
    finally:
        proc.kill()
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    assert torch.load("hpc_ckpt_1.ckpt", weights_only=True)["epoch"] >= 0
    assert proc.returncode == 143 and the_line(err).startswith("genre-torch: interrupted by SIGTERM after epoch ")


def test_a_signal_during_a_tool_is_one_line_and_the_handlers_are_put_back(data_env, capsys, monkeypatch) -> None:
    from genre_torch.tools import datacli
    from tests.fault_tools import run

    def report(*args: object) -> list[str]:
        os.kill(os.getpid(), signal.SIGTERM)
        return ["never printed"]

    monkeypatch.setattr(datacli, "report_lines", report)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    code, out, err = run(capsys, "data", "check", "music_genre", "--no_hash")
    assert code == 143 and "never printed" not in out
    assert err.strip() == "genre-torch: interrupted by SIGTERM before it finished; run the same command again"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def signal_in_a_finaliser(signum: int) -> None:
    """Send `signum` to this process from inside a finaliser (a library's garbage collection): the handler runs
    there, where Python drops any exception it raises."""

    class Resource:
        pass

    def finaliser() -> None:
        os.kill(os.getpid(), signum)
        for _ in range(1000):  # the handler runs here, inside the finaliser
            pass

    resource = Resource()
    weakref.finalize(resource, finaliser)
    del resource  # the finaliser runs now


def test_a_signal_that_lands_in_a_finaliser_is_one_line_not_a_traceback(data_env, capsys, monkeypatch) -> None:
    """Python drops an exception raised inside a weakref callback or finaliser (a library's garbage collection, as
    SQLAlchemy's in a search worker) after printing "Exception ignored" and a traceback; the command ran on and exited
    with the interruption's line. Now nothing is printed for it, and the next check raises it."""
    from genre_torch.tools import datacli
    from tests.fault_tools import run

    def report(*args: object) -> list[str]:
        signal_in_a_finaliser(signal.SIGTERM)
        return ["the report"]

    dropped: list[BaseException] = []  # what would be printed as "Exception ignored", with its traceback
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_value))
    monkeypatch.setattr(datacli, "report_lines", report)
    code, _, err = run(capsys, "data", "check", "music_genre", "--no_hash")
    assert code == 143 and dropped == []
    assert err.strip() == "genre-torch: interrupted by SIGTERM as it ended; run the same command again"
    assert sys.unraisablehook.__name__ == "<lambda>"  # put back


def test_a_signal_dropped_before_fit_stops_it_before_its_first_batch(data_env, capsys, monkeypatch) -> None:
    from genre_torch.core.training.lightning_cli import GenreCLI
    from tests.fault_tools import run

    original = GenreCLI.instantiate_trainer

    def instantiate_trainer(self: GenreCLI, **kwargs: object) -> object:
        signal_in_a_finaliser(signal.SIGTERM)
        return original(self, **kwargs)

    monkeypatch.setattr(GenreCLI, "instantiate_trainer", instantiate_trainer)
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: pytest.fail("printed as Exception ignored"))
    code, _, err = run(capsys, *FIT)
    assert code == 143 and err.strip().startswith("genre-torch: interrupted by SIGTERM")
    assert not list(Path(".").glob("checkpoints/**/*.ckpt")) and not list(Path(".").glob("runs/*/version_*"))


def test_a_signal_recorded_by_one_command_does_not_interrupt_the_next(data_env, capsys, monkeypatch) -> None:
    from genre_torch.core.training import signals
    from genre_torch.tools import datacli
    from tests.fault_tools import run

    real = datacli.report_lines

    def report(*args: object) -> list[str]:
        os.kill(os.getpid(), signal.SIGTERM)
        return ["never printed"]

    monkeypatch.setattr(datacli, "report_lines", report)
    assert run(capsys, "data", "check", "music_genre", "--no_hash")[0] == 143
    assert signals.received() is None  # the command that received it has ended
    monkeypatch.setattr(datacli, "report_lines", real)
    code, out, _ = run(capsys, "data", "check", "music_genre", "--no_hash")
    assert code == 0 and "music_genre" in out


# Ctrl-C reaches a search worker between trials (while it loads the study and picks the next trial), outside fit
BETWEEN_TRIALS = """
import os, signal, sys, weakref, optuna
from genre_torch import cli

real = optuna.storages.fail_stale_trials
class Resource:
    pass
def finaliser():  # a library's garbage collection: the handler's exception is dropped there
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):
        pass
def fail_stale_trials(study):  # as the worker looks for its next trial, once sys.argv[1] trials are complete
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) == int(sys.argv[1]):
        if sys.argv[2] == "finaliser":
            resource = Resource()
            weakref.finalize(resource, finaliser)
            del resource
        else:
            os.kill(os.getpid(), signal.SIGINT)
    return real(study)
optuna.storages.fail_stale_trials = fail_stale_trials
cli.main(sys.argv[3:])
"""


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
@pytest.mark.parametrize(
    ("done", "where"),
    [(0, "direct"), (1, "direct"), (0, "finaliser")],
    ids=["before-the-first-trial", "after-the-first-trial", "in-a-finaliser-before-the-first-trial"],
)
def test_ctrl_c_in_a_search_worker_between_trials_is_one_line_and_130(python, data_env, done: int, where: str) -> None:
    optuna = pytest.importorskip("optuna")
    Path("grid.yaml").write_text("seed_everything: {choices: [0, 1]}\n")
    args = ["sweep", "--config", CONFIG, "--space", "grid.yaml", "--workers", "1", "--trainer.max_epochs", "1"]
    script = [python, "-c", BETWEEN_TRIALS, str(done), where, *args]
    proc = subprocess.run(script, capture_output=True, text=True)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert [line for line in proc.stderr.splitlines() if line.startswith("genre-torch") or "Trace" in line] == [
        "genre-torch: interrupted by SIGINT during the search; finished trials are kept: run the same command "
        "again to resume the study"
    ], proc.stderr[-3000:]
    study = optuna.load_study(study_name="music_genre-grid", storage="sqlite:///runs/music_genre-grid/study.db")
    complete, queued = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING
    states = [t.state for t in study.trials]
    assert states == [complete] * done + [queued] * (2 - done)  # the cells finished or queued: none running, failed
    trials = sorted(p.name for p in Path("runs/music_genre-grid").glob("trial_*"))
    assert len(trials) == done and not list(Path("runs/music_genre-grid").glob("*.lock"))
    assert not Path("runs/music_genre-grid/summary.md").exists()  # no report of an unfinished grid
