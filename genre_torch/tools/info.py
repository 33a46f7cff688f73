"""`genre-torch info --ckpt_path CKPT`: a checkpoint's provenance, settings and metrics in a few lines.

Reads the checkpoint with `torch.load(weights_only=True)` and never imports pytorch_lightning, so it answers fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genre_torch.core.compat import data_state
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training.provenance import KEY, describe_code
from genre_torch.tools import parsers


def read(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint as plain tensors and primitives; a missing, foreign or unreadable file is a one-line error."""
    if Path(path).is_dir():
        raise GenreTorchError(f"checkpoint {path} is a folder; pass the .ckpt written by `genre-torch fit`")
    if not Path(path).is_file():
        raise GenreTorchError(f"checkpoint {path} does not exist; pass a .ckpt written by `genre-torch fit`")
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise GenreTorchError(f"{path} is not a readable checkpoint ({type(e).__name__}); pass a .ckpt file") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or data_state(ckpt) is None:
        raise GenreTorchError(f"{path} is not a genre_torch checkpoint (no preprocessing state in it)")
    return ckpt


def _short(value: Any) -> str:
    """A setting as it would be written in YAML, classes by their name."""
    if isinstance(value, dict) and "class_path" in value:
        args = ", ".join(f"{k}={_short(v)}" for k, v in (value.get("init_args") or {}).items())
        return f"{value['class_path'].rsplit('.', 1)[-1]}({args})"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def provenance_lines(record: dict[str, Any] | None) -> list[str]:
    """The provenance record in four lines, or one saying it was not recorded."""
    if not isinstance(record, dict):
        return ["provenance: not recorded (written before genre_torch recorded it)"]
    code, data, machine = record.get("code") or {}, record.get("data") or {}, record.get("machine") or {}
    lines = [f"made: {record.get('created', '?')} by genre_torch {code.get('version') or '?'} at {describe_code(code)}"]
    if code.get("diff_sha256"):
        lines[0] += f" (diff sha256 {code['diff_sha256'][:12]})"
    if data:
        lines.append(f"data file: {data.get('path')} ({_size(data.get('size') or 0)}, sha256 {data.get('sha256')})")
    cuda = f", CUDA {machine['cuda']}" if machine.get("cuda") else ""
    lines.append(
        f"machine: {machine.get('devices')} x {machine.get('device')}, precision {machine.get('precision')}; "
        f"Python {machine.get('python')}, torch {machine.get('torch')}, "
        f"pytorch-lightning {machine.get('pytorch_lightning')}{cuda}"
    )
    command = " ".join(record.get("command") or [])
    lines.append(f"command: {command}  (seed {record.get('seed')})")
    return lines


def metrics_lines(ckpt: dict[str, Any]) -> list[str]:
    """Epoch, global step and the ModelCheckpoint callbacks' best and current scores."""
    line = f"metrics: epoch {ckpt.get('epoch')} (counted from 0), global step {ckpt.get('global_step')}"
    for name, state in (ckpt.get("callbacks") or {}).items():
        if not name.startswith("ModelCheckpoint") or not isinstance(state, dict):
            continue
        monitor, best = state.get("monitor"), state.get("best_model_score")
        if monitor and best is not None:
            line += f"; best {monitor} {float(best):.4f} ({Path(state.get('best_model_path') or '?').name})"
            current = state.get("current_score")
            if current is not None:
                line += f", this checkpoint's {float(current):.4f}"
    return [line]


def describe(ckpt: dict[str, Any]) -> list[str]:
    """A checkpoint in a few readable lines: provenance, model, data, metrics."""
    hp = {k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    state = data_state(ckpt) or {}
    data = {k: v for k, v in (ckpt.get("datamodule_hyper_parameters") or {}).items() if not k.startswith("_")}
    data.pop("dataset", None)
    genres = (state.get("preprocessor") or {}).get("classes") or []
    sizes = ("num_features", "num_classes", "num_numeric")
    model = ", ".join(f"{k} {_short(v)}" for k, v in hp.items() if k not in sizes)
    return [
        *provenance_lines(ckpt.get(KEY)),
        f"model: {model}",
        f"data: {state.get('dataset')}, {len(genres)} genres, {hp.get('num_features')} encoded features; "
        + ", ".join(f"{k} {_short(v)}" for k, v in data.items()),
        *metrics_lines(ckpt),
    ]


def main(argv: list[str]) -> None:
    """`genre-torch info --ckpt_path CKPT`."""
    args = parsers.info().parse_args(argv)
    ckpt = read(args.ckpt_path)
    print(f"checkpoint: {args.ckpt_path}")
    print("\n".join(describe(ckpt)))
