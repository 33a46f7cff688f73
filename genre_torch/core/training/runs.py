"""Run folders: every run claims its version atomically, so concurrent runs never share a folder."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from genre_torch.core.training.safe_files import write_error


def claim_version(runs: Path, checkpoints: Path | None = None) -> int:
    """Create runs/version_N exclusively for the first free N after the newest; checkpoints/version_N must be empty.

    mkdir is atomic: of several processes trying the same N, exactly one succeeds and the others move on.
    A folder that cannot be created (read-only, name too long) is a one-line GenreTorchError.
    """
    missing = []
    for folder in (runs, *runs.parents):
        with contextlib.suppress(OSError):  # a name too long is missing too
            if folder.exists():
                break
        missing.append(folder)
    try:
        return _claim(runs, checkpoints)
    except OSError as e:
        for folder in missing:  # the parents this call created, deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise write_error(Path(e.filename or runs), e) from None


def _claim(runs: Path, checkpoints: Path | None) -> int:
    runs.mkdir(parents=True, exist_ok=True)
    versions = [int(m.group(1)) for p in runs.iterdir() if (m := re.fullmatch(r"version_(\d+)", p.name))]
    n = max(versions, default=-1) + 1
    while True:
        try:
            (runs / f"version_{n}").mkdir()
        except FileExistsError:
            n += 1
            continue
        ckpt = checkpoints / f"version_{n}" if checkpoints is not None else None
        if (
            ckpt is not None and ckpt.is_dir() and any(ckpt.iterdir())
        ):  # left over from a run whose log folder was deleted
            (runs / f"version_{n}").rmdir()
            n += 1
            continue
        return n


def discard(paths: Iterable[Path]) -> None:
    """Remove claimed run folders with everything in them, then their parents where that leaves them empty."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
        for parent in path.parents[:2]:  # runs/<dataset>, runs: created for this run unless others are there
            with contextlib.suppress(OSError):
                parent.rmdir()


def claim_evaluation(run: Path, name: str) -> str:
    """Create `run/name` (then name_2, name_3, ...) exclusively for an evaluation of that run's checkpoint; the
    logger's version relative to the dataset's folder (`version_N/test`): the evaluation sits in its training's run."""
    n = 1
    while True:
        folder = run / (name if n == 1 else f"{name}_{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            n += 1
            continue
        return f"{run.name}/{folder.name}"


def resumed_version(ckpt_path: str | None) -> int | None:
    """The run version that `fit --ckpt_path .../version_N/last.ckpt` continues, so it keeps its folders."""
    match = re.fullmatch(r"version_(\d+)", Path(ckpt_path).parent.name) if ckpt_path else None
    return int(match.group(1)) if match else None
