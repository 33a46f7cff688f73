"""A warm `genre-torch` and `python` for tests that run commands: each command is a process forked from a server
that has imported torch, Lightning and the package once (about 5 s of CPU saved per command on 2 cores).

`python -m tests.zygote SOCKET` serves. `client_script(SOCKET)` is a `genre-torch` executable and
`python_script(SOCKET)` a `python` that runs `-m MODULE ...` or `-c CODE ...`: each hands its arguments, environment,
folder and standard streams to a fresh fork, passes on the signals it gets (SIGINT, SIGTERM, SIGUSR1, SIGABRT) and
exits with the command's status, as the real ones would; killing it kills the command. A command's process is a
real one: its own pid, signals, files and exit status; only the imports are shared. Tests of startup itself (what
is imported when, import-time warnings, the process tree) run the real interpreter instead.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import json
import os
import runpy
import select
import signal
import socket
import struct
import sys
import types
from pathlib import Path

# what `genre-torch fit/test/predict/export` import; imported once, before the server forks
PRELOAD = (
    "genre_torch.cli",
    "genre_torch.core.training.lightning_cli",
    "genre_torch.core.training.module",
    "genre_torch.core.data",
    "genre_torch.tools.report",
    "genre_torch.tools.predict",
    "genre_torch.tools.search",
    "genre_torch.tools.search_trial",
)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGABRT)
_NUMBERS = tuple(int(s) for s in FORWARDED)  # as the client script spells them
HEADER = struct.Struct("!I")


def _recv_exact(conn: socket.socket, size: int, start: bytes = b"") -> bytes:
    data = start
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("client went away")
        data += chunk
    return data


def _run_command(request: dict, base_path: list[str]) -> None:
    """In the forked process: become `python ARGV` (`-m MODULE ...` or `-c CODE ...`) in the client's folder and
    environment."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if os.environ.get("PYTHONFAULTHANDLER"):  # the interpreter reads it at startup, which a fork skips
        faulthandler.enable()
    extra = [os.path.abspath(p) for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    option, target, *args = request["argv"]
    first = os.getcwd() if option == "-m" else ""  # as `python -m` and `python -c` put it first
    sys.path[:] = [first, *extra, *(p for p in base_path if p not in extra)]
    if option == "-c":
        sys.argv = ["-c", *args]
        main = sys.modules["__main__"] = types.ModuleType("__main__")  # no file, as under `python -c`
        exec(compile(target, "<string>", "exec"), main.__dict__)
        return
    sys.argv = [target, *args]
    sys.modules.pop(target, None)  # as in a fresh `python -m`: run as __main__, imported again if asked for
    runpy.run_module(target, run_name="__main__", alter_sys=True)


def _handle(conn: socket.socket, base_path: list[str]) -> int:
    """In a forked runner: read one request, fork its command, send its pid and then its exit status.

    Returns only in the command's process, with its exit code (an exception other than SystemExit propagates,
    and the interpreter prints it and exits 1, as for the real script).
    """
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    size = HEADER.unpack(_recv_exact(conn, HEADER.size, msg[: HEADER.size]))[0]
    body = _recv_exact(conn, HEADER.size + size, msg)[HEADER.size :]
    request = json.loads(body)
    pid = os.fork()
    if pid == 0:  # the command
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in FORWARDED[1:]:
            signal.signal(signum, signal.SIG_DFL)
        try:
            _run_command(request, base_path)
        except SystemExit as e:
            code = e.code
            if code is not None and not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
            return code or 0
        return 0
    for fd in fds:
        os.close(fd)
    conn.sendall(f"{pid}\n".encode())
    while not (ended := os.waitpid(pid, os.WNOHANG))[0]:
        if select.select([conn], [], [], 0.2)[0] and not conn.recv(1):  # the client was killed: so is its command
            os.kill(pid, signal.SIGKILL)
            ended = os.waitpid(pid, 0)
            break
    with contextlib.suppress(OSError):  # the client is gone
        conn.sendall(f"{os.waitstatus_to_exitcode(ended[1])}\n".encode())
    os._exit(0)  # the runner leaves without the exit handlers its imports registered


def serve(path: str) -> int:
    """Import PRELOAD, then fork a runner for every connection to the socket at `path`."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    base_path = list(sys.path[1:])
    gc.freeze()  # the imports' objects: no collection in a fork touches (and copies) their pages
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # runners are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path + ".tmp")
    server.listen(64)
    os.rename(path + ".tmp", path)  # clients see the socket only once it accepts
    server.settimeout(2.0)
    parent = os.getppid()
    while os.getppid() == parent:  # a test run that died does not leave its server behind
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        if os.fork() == 0:  # the runner; its command process returns through here with its exit code
            server.close()
            return _handle(conn, base_path)
        conn.close()
    return 0


CLIENT = r"""#!{python} -I
import json, os, signal, socket, struct, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect({path!r})
body = json.dumps({{"argv": [*{prefix!r}, *sys.argv[1:]], "env": dict(os.environ), "cwd": os.getcwd()}}).encode()
socket.send_fds(sock, [struct.pack("!I", len(body)) + body], [0, 1, 2])
reply = sock.makefile()
pid = int(reply.readline())
for signum in {forwarded!r}:
    signal.signal(signum, lambda s, f: os.kill(pid, s))
line = reply.readline()
code = int(line) if line else 1
if code < 0:  # killed by a signal: end the same way, as the shell would see it
    if -code != signal.SIGKILL:  # which has no handler to take back
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def client_script(path: str | os.PathLike) -> str:
    """The text of a `genre-torch` executable that runs its command in the server listening at `path`."""
    return CLIENT.format(python=sys.executable, path=str(path), prefix=["-m", "genre_torch.cli"], forwarded=_NUMBERS)


def python_script(path: str | os.PathLike) -> str:
    """The text of a `python` executable for `-m MODULE ...` and `-c CODE ...`, run in the server at `path`."""
    return CLIENT.format(python=sys.executable, path=str(path), prefix=[], forwarded=_NUMBERS)


def start(folder: Path) -> tuple[object, Path]:
    """Start a server in `folder` (its socket `folder/zygote.sock`); the Popen and the socket path."""
    import subprocess
    import time

    root = Path(__file__).resolve().parents[1]
    path = folder / "zygote.sock"
    for old in (path, path.with_suffix(".sock.tmp")):
        old.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.zygote", str(path)], cwd=root, env=env)
    deadline = time.monotonic() + 120
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the test zygote did not start (exit code {proc.poll()})")
        time.sleep(0.05)
    return proc, path


if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1]))
