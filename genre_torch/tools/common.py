"""Shared plumbing of the tool subcommands (predict, export, importance): arguments, checkpoints, atomic writes."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import torch

from genre_torch.core.checkpoints import model_arguments
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.module import CHECKPOINT_KEY, GenreClassifier


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are GenreTorchError: one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise GenreTorchError(f"{self.prog}: {message}")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a genre_torch checkpoint (plain tensors only); a missing or foreign file is a clear error."""
    if not Path(path).is_file():
        raise GenreTorchError(f"checkpoint {path} does not exist; pass the .ckpt written by `genre-torch fit`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise GenreTorchError(f"{path} is not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "hyper_parameters" not in ckpt:
        raise GenreTorchError(f"{path} is not a genre_torch checkpoint (no preprocessing state in it)")
    return ckpt


def load_model(ckpt: dict[str, Any]) -> GenreClassifier:
    """The trained GenreClassifier of a loaded checkpoint, on CPU in eval mode."""
    model = GenreClassifier(**model_arguments(ckpt["hyper_parameters"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it is removed."""
    target = Path(path)
    if not target.parent.is_dir():
        raise GenreTorchError(f"folder {target.parent} of the output {target} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual permissions
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
