"""Checks of the tool subcommands' files (predict, export, importance), standard library only.

They run while the arguments are parsed (tools/parsers.py), before a tool imports torch or pandas, so that a
missing file or an unusable output name is answered at once.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from genre_torch.core.errors import GenreTorchError


def check_checkpoint(path: str | os.PathLike) -> None:
    """Refuse a checkpoint path that is a folder or does not exist (its content is checked when it is read)."""
    try:
        if Path(path).is_dir():
            raise GenreTorchError(f"checkpoint {path} is a folder; pass the .ckpt written by `genre-torch fit`")
        if not Path(path).is_file():
            raise GenreTorchError(f"checkpoint {path} does not exist; pass a .ckpt written by `genre-torch fit`")
    except OSError as e:
        raise GenreTorchError(f"checkpoint {path}: {e.strerror}") from None


def check_input(path: str | os.PathLike, what: str = "input file") -> None:
    """Refuse an input that is a folder or does not exist (a pipe such as <(zcat songs.csv.gz) is fine)."""
    try:
        if Path(path).is_dir():
            raise GenreTorchError(f"{what} {path} is a folder; give a CSV file")
        if not Path(path).exists():
            raise GenreTorchError(f"{what} {path} does not exist")
    except OSError as e:
        raise GenreTorchError(f"{what} {path}: {e.strerror}") from None


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse an output that is a folder, a link, a FIFO or device, the same file as an input, or an unusable name."""
    target = Path(path)
    if str(path).endswith(("/", os.sep)) or target.name in ("", ".", ".."):
        raise GenreTorchError(f"output {path} names a folder; give a file name")
    try:
        _check_output(target, inputs)
    except OSError as e:  # a name longer than the filesystem allows (ENAMETOOLONG), a loop of links, ...
        hint = "; give a shorter name" if e.errno == errno.ENAMETOOLONG else ""
        raise GenreTorchError(f"output {_short(target)}: {e.strerror}{hint}") from None


def _check_output(target: Path, inputs: Iterable[str | os.PathLike]) -> None:
    if target.is_symlink():
        raise GenreTorchError(f"output {target} is a symbolic link; give the name of a regular file to write")
    if target.is_dir():
        raise GenreTorchError(f"output {target} is a folder; give a file name inside it")
    if target.exists() and not target.is_file():
        raise GenreTorchError(f"output {target} is not a regular file (a FIFO, socket or device); give a file name")
    for source in inputs:
        if target.exists() and Path(source).exists() and os.path.samefile(source, target):
            raise GenreTorchError(f"output {target} is the input {source}; write the output to another file")
    if not target.parent.is_dir():
        raise GenreTorchError(f"folder {target.parent} of the output {target} does not exist")


def _short(path: Path) -> str:
    """A path for a message: long names cut in the middle."""
    text = str(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-30:]}"
