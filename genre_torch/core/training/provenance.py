"""Provenance: which code, data and machine made a run or a checkpoint, and whether they are the same today.

A record is plain primitives (a checkpoint stays loadable with `torch.load(weights_only=True)`):

    code:    package version; git commit, dirty (uncommitted changes) and sha256 of `git diff HEAD`
    data:    the data file's resolved path, size and sha256 (a prepared folder: all its files)
    machine: Python, torch, pytorch-lightning and CUDA versions, device name and count, precision, platform
    command: sys.argv; seed; config: the run's resolved config (LightningCLI's config.yaml) when there is one

Only the standard library is imported at module level (torch lazily), so `genre-torch info` stays light.
The Lightning callback that writes records into checkpoints and run folders is core/training/provenance_callback.py.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

KEY = "provenance"  # the checkpoint's top-level key
CACHE_ENTRIES = 256  # files remembered in the hash cache
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def package_version() -> str | None:
    """The installed genre_torch version, or None when it runs from a folder that was never installed."""
    try:
        return importlib.metadata.version("genre_torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """Output of a git command run in the package's folder, or None (no git, not a checkout, an error)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args],
            capture_output=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


@functools.cache
def code_record() -> dict[str, Any]:
    """Package version and, in a git checkout, commit, dirty and the sha256 of `git diff HEAD`.

    Cached per process: the code a process runs is the code it imported, whatever the tree holds later.
    """
    commit = _git("rev-parse", "HEAD")
    diff = _git("diff", "HEAD", "--binary", "--no-ext-diff", "--no-color") if commit else None
    return {
        "version": package_version(),
        "commit": commit.strip() if commit else None,
        "dirty": bool(diff) if diff is not None else None,
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
    }


def describe_code(code: dict[str, Any] | None) -> str:
    """'abc1234', 'abc1234+dirty', or the package version when the commit is not known."""
    code = code or {}
    if code.get("commit"):
        return code["commit"][:7] + ("+dirty" if code.get("dirty") else "")
    return f"version {code['version']}" if code.get("version") else "unknown code"


def cache_path() -> Path:
    """The file that remembers data files' hashes: $XDG_CACHE_HOME/genre_torch (else ~/.cache/genre_torch)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "genre_torch" / "sha256.json"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, unreadable or broken: start again
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(path: Path, cache: dict[str, Any]) -> None:
    """Write the cache whole, then rename (atomic); a cache that cannot be written is skipped, never an error."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sha256.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(dict(list(cache.items())[-CACHE_ENTRIES:]), out)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered by (resolved path, size, mtime_ns) so a file is read once, not every fit."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    cache_file = cache_path()
    cache = _read_cache(cache_file)
    key = str(resolved)
    entry = cache.get(key)
    known = isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
    if known and [entry.get("size"), entry.get("mtime_ns")] == [stat.st_size, stat.st_mtime_ns]:
        return entry["sha256"]
    h = hashlib.sha256()
    with open(resolved, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    cache.pop(key, None)  # re-inserted last: the newest entries are the ones kept
    cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": h.hexdigest()}
    _write_cache(cache_file, cache)
    return h.hexdigest()


def data_record(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """Resolved path, size and sha256 of the data file (a folder: of its files, by relative name), or None."""
    if path is None:
        return None
    resolved = Path(path).resolve()
    if resolved.is_dir():  # a folder written by `genre-torch prepare`
        files = sorted(p for p in resolved.rglob("*") if p.is_file())
        h = hashlib.sha256()
        for file in files:
            h.update(f"{file.relative_to(resolved).as_posix()}\0{file_sha256(file)}\n".encode())
        return {"path": str(resolved), "size": sum(p.stat().st_size for p in files), "sha256": h.hexdigest()}
    return {"path": str(resolved), "size": resolved.stat().st_size, "sha256": file_sha256(resolved)}


def data_file(datamodule: Any) -> Path | None:
    """The data file (or prepared folder) a GenreDataModule reads, found as it finds it; None when there is none."""
    from genre_torch.core.data import find_data_file
    from genre_torch.core.errors import GenreTorchError

    path = getattr(datamodule, "path", None)
    if path is not None and Path(path).is_dir():
        return Path(path)
    try:
        return find_data_file(datamodule.spec, path)
    except (GenreTorchError, AttributeError):
        return None


def _distribution(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_record(device: str | None = None, devices: int | None = None, precision: str | None = None) -> dict:
    """Python, torch, pytorch-lightning and CUDA versions, the device's name and count, precision, platform."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a str subclass: not loadable with weights_only
        "pytorch_lightning": _distribution("pytorch-lightning"),
        "cuda": str(torch.version.cuda) if torch.version.cuda else None,
        "device": device,
        "devices": devices,
        "precision": precision,
        "platform": platform.platform(),
    }


def collect(
    data_path: str | os.PathLike | None,
    seed: int | None = None,
    device: str | None = None,
    devices: int | None = None,
    precision: str | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    """The provenance record of a run: code, data, machine, command line, seed and resolved config."""
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "code": code_record(),
        "data": data_record(data_path),
        "machine": machine_record(device, devices, precision),
        "command": list(sys.argv),
        "seed": seed,
        "config": config,
    }


def compare(record: dict[str, Any] | None, data_path: str | os.PathLike | None) -> list[str]:
    """What differs between a checkpoint's record and the present code and data file, one short notice each."""
    if not isinstance(record, dict):
        return []  # written before provenance was recorded: nothing to compare
    notices = []
    then, now = record.get("code") or {}, code_record()
    if then.get("commit") and now.get("commit"):
        same = then["commit"] == now["commit"] and then.get("dirty") == now.get("dirty")
        if same and then.get("dirty"):
            same = then.get("diff_sha256") == now.get("diff_sha256")
        if not same:
            changes = " (other uncommitted changes)" if then["commit"] == now["commit"] else ""
            notices.append(f"trained at commit {describe_code(then)}, this code is {describe_code(now)}{changes}")
    elif then.get("version") and now.get("version") and then["version"] != now["version"]:
        notices.append(f"trained with genre_torch {then['version']}, this is {now['version']}")
    data = record.get("data") or {}
    if data.get("sha256") and data_path is not None:
        present = data_record(data_path)
        if present is not None and present["sha256"] != data["sha256"]:
            notices.append(
                f"trained on {data.get('path')} (sha256 {data['sha256'][:12]}), "
                f"the data file now is {present['path']} (sha256 {present['sha256'][:12]})"
            )
    return notices


def _rank_zero() -> bool:
    """Whether this process is the first of a distributed run (the ranks launchers set in the environment)."""
    return all(int(os.environ.get(v, "0") or 0) == 0 for v in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK"))


def check_against(ckpt: str | os.PathLike | dict[str, Any], data_path: str | os.PathLike | None) -> str | None:
    """Warn in one line (stderr, rank 0) when a checkpoint was made by other code or data; the line, or None.

    ckpt: its path or the loaded checkpoint; data_path: the data file used now (None: compare the code only).
    """
    name = "the checkpoint"
    if not isinstance(ckpt, dict):
        name = str(ckpt)
        try:
            import torch

            ckpt = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception:  # unreadable checkpoints are refused by their own checks, not here
            return None
    try:
        notices = compare(ckpt.get(KEY) if isinstance(ckpt, dict) else None, data_path)
    except OSError:  # the data file vanished between the checks: the run itself will say so
        return None
    if not notices:
        return None
    line = f"warning: {name} was {' and '.join(notices)}; its numbers may not reproduce here"
    if _rank_zero():
        print(line, file=sys.stderr, flush=True)
    return line


def stamp(commits: list[str], data: dict[str, str]) -> str:
    """'commit abc1234+dirty, data music_genre.csv sha256 0123456789ab': what a published number was measured at.

    commits: describe_code() of each result (several when kept results come from several commits);
    data: file name -> sha256 of the data files the results were measured on.
    """
    files = ", ".join(f"{name} sha256 {sha[:12]}" for name, sha in sorted(data.items()))
    return f"commit {', '.join(sorted(set(commits))) or 'unknown'}, data {files or 'unknown'}"
