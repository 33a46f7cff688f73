"""Checks of a checkpoint before a run uses it: readable, a genre_torch checkpoint, the right dataset and shapes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genre_torch.core.compat import data_state, legacy_optimizer
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training.safe_files import check_finite, verify_archive


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
    if not isinstance(ckpt, dict) or data_state(ckpt) is None or "state_dict" not in ckpt:
        raise GenreTorchError(f"{path} is not a genre_torch checkpoint (no preprocessing state in it)")
    check_finite(ckpt, path)
    return ckpt


def model_arguments(hparams: dict[str, Any]) -> dict[str, Any]:
    """GenreClassifier arguments from a checkpoint's hyper_parameters, also from older versions of the module.

    Older checkpoints named the architecture (arch: mlp, arch_args: {...}) and kept label smoothing and
    gradient clipping on the model; they map onto a backbone config and a CrossEntropy criterion. Before injected
    optimisers they named one (adam, adamw) with lr, weight_decay, scheduler and warmup (legacy_optimizer).
    """
    args = legacy_optimizer({k: v for k, v in hparams.items() if not k.startswith("_")})
    if "arch" in args:
        from genre_torch.core import models

        cls = models.get(args.pop("arch"))
        settings = dict(args.pop("arch_args", None) or {})
        args["backbone"] = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": settings}
        smoothing = args.pop("label_smoothing", 0.0) or 0.0
        args["criterion"] = {
            "class_path": "genre_torch.core.training.losses.CrossEntropy",
            "init_args": {"label_smoothing": smoothing},
        }
        args.pop("gradient_clip_val", None)  # a training setting: it does not change the trained model
    return args


def checkpoint_data(path: str | os.PathLike) -> dict[str, Any]:
    """The data settings a checkpoint was trained with: its datamodule's settings, the dataset as the spec it stores
    (a YAML spec's content too), and the data file when it is still where it was."""
    ckpt = read_checkpoint(path)
    settings = {k: v for k, v in (ckpt.get("datamodule_hyper_parameters") or {}).items() if not k.startswith("_")}
    state = data_state(ckpt) or {}
    from genre_torch.core.data.datasets import SPECS

    name = state.get("dataset")
    settings["dataset"] = name if name in SPECS else state.get("spec", settings.get("dataset"))
    if settings.get("path") and not Path(settings["path"]).exists():
        settings["path"] = None  # moved: looked for as usual ($GENRE_TORCH_DATA_DIR, ./data)
    return settings


def check_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, dataset: str | None = None) -> None:
    """Refuse, in one line, a checkpoint that cannot continue or evaluate this run (before anything is written)."""
    ckpt = read_checkpoint(path)
    hparams = ckpt.get("hyper_parameters") or {}
    if "arch" in hparams:
        raise GenreTorchError(
            f"{path} was written by an older genre_torch (architecture {hparams['arch']!r} by name): `genre-torch "
            "predict` and `export` still read it; to test or resume, retrain with `genre-torch fit --config ...`"
        )
    if isinstance(hparams.get("optimizer"), str) or "scheduler" in hparams:
        raise GenreTorchError(
            f"{path} was written before injected optimisers (optimizer: {hparams.get('optimizer')!r} by name): "
            "`genre-torch predict`, `export` and `importance` still read it; to test or resume, retrain it"
        )
    trained_on = data_state(ckpt).get("dataset")
    if dataset is not None and trained_on != dataset:
        raise GenreTorchError(
            f"{path} was trained on {trained_on}, not {dataset}: leave out --config / --data.dataset to use the "
            "dataset the checkpoint stores, or pass that dataset's config"
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
