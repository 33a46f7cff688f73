"""--model.compile's cache: torch's inductor writes it under $TMPDIR; a run that fails leaves none it created.

The folder is torch's default (`$TMPDIR/torchinductor_<user>`) unless TORCHINDUCTOR_CACHE_DIR names another; a
compile that fails for lack of space (or any OS error) is one line naming the folder.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import tempfile
from pathlib import Path

from genre_torch.core.errors import GenreTorchError


def cache_folder() -> Path:
    """The folder torch.compile's inductor writes into (TORCHINDUCTOR_CACHE_DIR, else torch's default)."""
    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if given:
        return Path(given).absolute()
    try:
        user = getpass.getuser()
    except (KeyError, ModuleNotFoundError, OSError):
        user = f"uid_{os.getuid()}" if hasattr(os, "getuid") else "unknown_user"
    return Path(tempfile.gettempdir()).absolute() / ("torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))


def new_cache_folder() -> Path | None:
    """The cache folder if this run would be the one to create it (it does not exist yet), else None."""
    folder = cache_folder()
    return None if folder.exists() else folder


def discard(folder: Path | None) -> None:
    """Remove a cache folder this run created."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _chain(error: BaseException) -> list[BaseException]:
    """An exception and those it wraps (as cause, context, or inductor's inner_exception)."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop()
        if e is None or any(e is f for f in found):
            continue
        found.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "inner_exception", None)]
    return found


def compile_error(error: BaseException) -> GenreTorchError | None:
    """One line for a compile that failed on the filesystem (a full $TMPDIR), or None for any other error."""
    chain = _chain(error)
    cause = next((e for e in chain if isinstance(e, OSError)), None)
    compiling = any(type(e).__module__.startswith(("torch._inductor", "torch._dynamo")) for e in chain)
    if cause is None or not compiling:
        return None
    return GenreTorchError(
        f"--model.compile could not write its cache in {cache_folder()}: {cause.strerror or cause}; free space "
        "there or point TORCHINDUCTOR_CACHE_DIR at another folder"
    )
