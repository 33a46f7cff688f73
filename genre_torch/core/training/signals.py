"""SIGTERM and SIGINT: an interrupted command ends with one line and exit status 128 + the signal's number.

`watch()` (called by `genre-torch`'s main) adds a handler that records the signal. Lightning composes its own
SIGTERM handler with it while a Trainer runs (`received_sigterm`: the loops stop after the epoch in progress,
whose checkpoint is written, and raise SIGTERMException). A SIGINT while a Trainer runs raises `Interrupted` at the
next batch (`defer`, the StopOnSignal callback); outside a Trainer run the handler raises it at once. Where Python
drops that exception (inside a finaliser), `check()` raises it later. Lightning's SLURM requeue (SIGUSR1) is not
touched.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

WATCHED = (signal.SIGTERM, signal.SIGINT)
AGAIN = "before it finished; run the same command again"
_received: list[int] = []
_deferred = [False]
_hook: list[Any] = []  # the sys.unraisablehook watch() replaced


class Interrupted(BaseException):
    """A watched signal stopped the command; `hint` says what it left and how to go on.

    Not a KeyboardInterrupt: Optuna would mark the trial failed (a resumed grid would never run its cell again)
    and Lightning would exit 1; like SystemExit, it passes through `except Exception`.
    """

    def __init__(self, signum: int, hint: str = AGAIN) -> None:
        super().__init__(signum, hint)
        self.signum, self.hint = signum, hint

    @property
    def line(self) -> str:
        """The one line `genre-torch` prints for it."""
        name = signal.Signals(self.signum).name
        return f"genre-torch: interrupted by {name} {self.hint}"

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number."""
        return 128 + self.signum


def _handler(signum: int, frame: FrameType | None) -> None:
    if signum not in _received:
        _received.append(signum)
    if _deferred[0]:  # a Trainer runs: StopOnSignal raises at the next batch
        return
    # Lightning's composed handler calls this one too: then its loops stop after the current epoch
    if signum == signal.SIGINT or signal.getsignal(signum) is _handler:
        raise Interrupted(signum)


def _unraisable(unraisable: Any) -> None:
    # The handler's exception landed in a finaliser or weakref callback (a library's garbage collection, such as
    # SQLAlchemy's), where Python prints "Exception ignored" with a traceback and drops it. The signal is recorded:
    # the next check raises it (a search worker's next trial, a Trainer's setup, the command's end).
    if not isinstance(unraisable.exc_value, Interrupted):
        (_hook[-1] if _hook else sys.__unraisablehook__)(unraisable)


def defer(on: bool) -> None:
    """While on, a SIGINT is only recorded, for StopOnSignal to raise at the next batch.

    Raised wherever Python happens to be, the exception can land inside a library's critical section: between a
    TensorBoard writer's queue put and its notify (the writer's flush then waits up to 2 minutes for its thread), or
    in code that swallows every exception (the run trained on to max_epochs).
    """
    _deferred[0] = on


def watch() -> dict[int, Any]:
    """Record SIGTERM and SIGINT (SIGINT only where it is not ignored, as under nohup); the previous handlers."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        return {}
    previous = {signum: signal.getsignal(signum) for signum in WATCHED}
    for signum, handler in previous.items():
        if handler in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(signum, _handler)
    _hook.append(sys.unraisablehook)
    sys.unraisablehook = _unraisable
    return previous


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers `watch()` found and forget the signals it recorded (a process running commands in
    turn, such as the tests: the next one is not interrupted by this one's signal)."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    if previous and _hook:
        sys.unraisablehook = _hook.pop()
    _received.clear()
    _deferred[0] = False


def received() -> int | None:
    """The first watched signal this process received since `watch()`, or None."""
    return _received[0] if _received else None


def has_received(signum: int) -> bool:
    """Whether this process received `signum` since `watch()` (another signal may have come first)."""
    return signum in _received


def check(hint: str = AGAIN) -> None:
    """Raise Interrupted if a watched signal was received (a run that finished anyway is still interrupted)."""
    if _received:
        raise Interrupted(_received[0], hint)


def interruption(e: BaseException) -> Interrupted | None:
    """The interruption an exception that ends a command stands for, or None (an ordinary exit)."""
    if isinstance(e, Interrupted):
        return e
    if _received:
        return Interrupted(_received[0])
    return Interrupted(signal.SIGINT) if isinstance(e, KeyboardInterrupt) else None
