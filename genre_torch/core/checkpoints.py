"""Checks of a checkpoint before a run uses it: readable, a genre_torch checkpoint, the right dataset and shapes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genre_torch.core.checkpoint_io import check_finite, verify_archive
from genre_torch.core.errors import GenreTorchError

CHECKPOINT_KEY = "genre_torch"


def data_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The data state a checkpoint was trained with: dataset name, spec and fitted preprocessing (one reader)."""
    return ckpt[CHECKPOINT_KEY]


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A genre_torch checkpoint as plain tensors and primitives; anything else is a one-line error."""
    if Path(path).is_dir():
        example = Path(path) / "last.ckpt"
        raise GenreTorchError(f"checkpoint {path} is a folder; pass a .ckpt file in it (e.g. {example})")
    if not Path(path).is_file():
        raise GenreTorchError(f"checkpoint {path} does not exist; pass a .ckpt written by `genre-torch fit`")
    verify_archive(path)  # a flipped byte in a tensor: the zip's CRC-32
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise GenreTorchError(f"{path} is not a readable checkpoint ({type(e).__name__}); pass a .ckpt file") from None
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "state_dict" not in ckpt:
        raise GenreTorchError(f"{path} is not a genre_torch checkpoint (no preprocessing state in it)")
    check_finite(ckpt, path)
    return ckpt


def model_arguments(hparams: dict[str, Any]) -> dict[str, Any]:
    """GenreClassifier arguments from a checkpoint's hyper_parameters, also from before typed backbones.

    Older checkpoints named the architecture (arch: mlp, arch_args: {...}) and kept label smoothing and
    gradient clipping on the model; they map onto a backbone config and a CrossEntropy criterion.
    """
    args = {k: v for k, v in hparams.items() if not k.startswith("_")}
    if "arch" in args:
        from genre_torch.core import models

        cls = models.get(args.pop("arch"))
        settings = dict(args.pop("arch_args", None) or {})
        args["backbone"] = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": settings}
        smoothing = args.pop("label_smoothing", 0.0) or 0.0
        args["criterion"] = {
            "class_path": "genre_torch.core.losses.CrossEntropy",
            "init_args": {"label_smoothing": smoothing},
        }
        args.pop("gradient_clip_val", None)  # a training setting: it does not change the trained model
    return args


def check_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, dataset: str | None = None) -> None:
    """Refuse, in one line, a checkpoint that cannot continue or evaluate this run (before anything is written)."""
    ckpt = read_checkpoint(path)
    hparams = ckpt.get("hyper_parameters") or {}
    if "arch" in hparams:
        raise GenreTorchError(
            f"{path} was written by an older genre_torch (architecture {hparams['arch']!r} by name): `genre-torch "
            "predict` and `export` still read it; to test or resume, retrain with `genre-torch fit --config ...`"
        )
    trained_on = data_state(ckpt).get("dataset")
    if dataset is not None and trained_on != dataset:
        raise GenreTorchError(
            f"{path} was trained on {trained_on}, not {dataset}: pass that dataset's config "
            f"(--data.dataset {trained_on})"
        )
    if model is not None:
        expected = model.state_dict()
        for key, value in ckpt["state_dict"].items():
            if key not in expected or expected[key].shape != value.shape:
                want = tuple(expected[key].shape) if key in expected else "absent"
                raise GenreTorchError(
                    f"{path} does not fit this model ({key}: {tuple(value.shape)} in the checkpoint, {want} here): "
                    "pass the config it was trained with"
                )
