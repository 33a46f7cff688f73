"""Safe files: atomic writes in the destination folder, stale temporary files removed, checkpoints verified on load.

A temporary file is named `.NAME.<host>-<pid>.<random>.tmp` next to its destination, so that a later
write into the same folder recognises the leftovers of a killed process (same host, pid no longer
alive) and removes them. `AtomicCheckpointIO` (atomic_io.py) is the Trainer plugin (`plugins=[AtomicCheckpointIO()]`)
that saves checkpoints this way instead of through a temporary file in $TMPDIR, which a full disk
turns into a truncated checkpoint when $TMPDIR is on another filesystem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from genre_torch.core.errors import GenreTorchError

HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
STALE = re.compile(rf"^\..+\.{re.escape(HOST)}-(\d+)\.[0-9a-f]{{8}}\.tmp$")
SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def temp_name(target: Path) -> Path:
    """A fresh temporary name next to `target` that names this host and process."""
    return target.parent / f".{target.name}.{HOST}-{os.getpid()}.{secrets.token_hex(4)}.tmp"


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders that killed processes of this host left in `folder`; return them."""
    removed = []
    with contextlib.suppress(OSError):
        for path in Path(folder).glob(".*.tmp"):
            match = STALE.match(path.name)
            if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed.append(path)
    return removed


def write_error(target: Path, e: OSError) -> GenreTorchError:
    """One line for a failed write: what failed and what to do."""
    reason = e.strerror or str(e)
    if e.errno in SPACE:
        return GenreTorchError(f"cannot write {target}: {reason}; free some space there or write elsewhere")
    if e.errno in READ_ONLY:
        return GenreTorchError(f"cannot write {target}: {reason}; choose a writable folder")
    if e.errno == errno.ENAMETOOLONG:
        return GenreTorchError(f"cannot write {target}: {reason}; use a shorter name or a shallower folder")
    return GenreTorchError(f"cannot write {target}: {reason}")


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is synced and replaces `path`, else it is removed.

    An OSError inside the block or while replacing (disk full, read-only folder) becomes a one-line
    GenreTorchError; `path` is then untouched.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise GenreTorchError(f"folder {target.parent} of the output {target} does not exist")
    remove_stale_temps(target.parent)
    tmp = temp_name(target)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the usual umask permissions
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
        with contextlib.suppress(OSError):  # not every filesystem syncs folders
            _fsync(target.parent)
    except OSError as e:
        raise write_error(target, e) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def verify_archive(path: str | os.PathLike) -> None:
    """Check the CRC-32 of every member of a zip-format checkpoint: any flipped byte in a tensor is caught."""
    if not zipfile.is_zipfile(path):
        return  # not zip-based: torch.load decides
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        bad = f"the archive ({type(e).__name__})"
    if bad is not None:
        raise GenreTorchError(f"checkpoint {path} is corrupt ({bad} fails its checksum); retrain or use another one")


def nonfinite_tensor(tree: Any, prefix: str = "") -> str | None:
    """The name of the first floating tensor in a nested dict/list that holds NaN or inf, else None."""
    if isinstance(tree, torch.Tensor):
        return prefix if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else None
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    for key, value in items:
        found = nonfinite_tensor(value, f"{prefix}.{key}" if prefix else str(key))
        if found is not None:
            return found
    return None


def check_finite(checkpoint: dict[str, Any], path: str | os.PathLike, *keys: str) -> None:
    """Refuse a checkpoint whose tensors under `keys` (default: state_dict) are not all finite."""
    for key in keys or ("state_dict",):
        name = nonfinite_tensor(checkpoint.get(key, {}), key)
        if name is not None:
            raise GenreTorchError(
                f"checkpoint {path} has non-finite values (NaN or inf) in {name}; retrain or use another checkpoint"
            )
