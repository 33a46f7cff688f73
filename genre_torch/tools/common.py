"""Shared plumbing of the tool subcommands (predict, export, importance): arguments, checkpoints, output files."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from genre_torch.core.checkpoint_io import atomic_path, check_finite, verify_archive
from genre_torch.core.checkpoints import data_state, model_arguments, read_checkpoint
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.module import GenreClassifier
from genre_torch.core.preprocessing import Preprocessor

__all__ = ["atomic_path", "check_output", "load_checkpoint", "load_model"]


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a genre_torch checkpoint (plain tensors only); a missing, foreign, corrupt or non-finite one is an error."""
    if Path(path).is_dir():
        raise GenreTorchError(f"checkpoint {path} is a folder; pass the .ckpt written by `genre-torch fit`")
    verify_archive(path)  # any flipped byte: the zip's CRC-32 of each tensor
    ckpt = read_checkpoint(path)  # readable, a genre_torch checkpoint, finite weights
    if "hyper_parameters" not in ckpt:
        raise GenreTorchError(f"{path} is not a genre_torch checkpoint (no model settings in it)")
    check_finite({"data state": data_state(ckpt)}, path, "data state")  # the preprocessing's median, mean and std
    check_consistent(ckpt, path)
    return ckpt


def check_consistent(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse a checkpoint whose preprocessing state is incomplete or does not fit its model's input and output."""
    try:
        pre = Preprocessor.from_state_dict(data_state(ckpt)["preprocessor"])
        width, genres = pre.num_features, len(pre.classes)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise GenreTorchError(
            f"checkpoint {path} has an incomplete preprocessing state ({type(e).__name__}: {e}); retrain it"
        ) from None
    hparams = ckpt["hyper_parameters"]
    if hparams.get("num_features", width) != width or hparams.get("num_classes", genres) != genres:
        raise GenreTorchError(
            f"checkpoint {path}: its preprocessing gives {width} features and {genres} genres, its model takes "
            f"{hparams.get('num_features')} and gives {hparams.get('num_classes')}; retrain or use another checkpoint"
        )


def load_model(ckpt: dict[str, Any]) -> GenreClassifier:
    """The trained GenreClassifier of a loaded checkpoint, on CPU in eval mode."""
    try:
        args = model_arguments(ckpt["hyper_parameters"])
        known = inspect.signature(GenreClassifier).parameters  # a subclass's own settings shape training only
        model = GenreClassifier(**{k: v for k, v in args.items() if k in known})
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError, KeyError) as e:  # settings of another version, weights of another model
        detail = str(e).strip().splitlines()[-1].strip()
        raise GenreTorchError(
            f"the checkpoint's weights do not fit its model settings ({detail}); retrain it"
        ) from None
    return model.eval()


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse an output that is a folder, a link, a FIFO or device, or the same file as one of the inputs."""
    target = Path(path)
    if str(path).endswith(("/", os.sep)) or target.name in ("", ".", ".."):
        raise GenreTorchError(f"output {path} names a folder; give a file name")
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
