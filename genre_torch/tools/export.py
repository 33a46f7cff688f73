"""`genre-torch export`: the preprocessing after cleaning + the backbone + softmax as one ONNX or TorchScript graph.

Input: a float32 matrix `features` of shape (rows, columns), one column per feature in the order
written to the sidecar JSON (FILE with suffix .json; also in the ONNX metadata / TorchScript extra
file "genre_torch.json"): first every numeric column as its cleaned raw value (NaN = missing; the
training median is imputed), then every categorical column as the index of its category in that
column's `categories` list (-1 or NaN = unseen or missing: the all-zero one-hot). `raw_matrix()`
builds it from a cleaned DataFrame. Output: `probabilities`, shape (rows, genres), in `classes` order.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from genre_torch.core.compat import data_state, preprocessor_state
from genre_torch.core.data.datasets import spec_from_checkpoint_state
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.models.ensemble import PackedEnsemble
from genre_torch.core.training.safe_files import atomic_path
from genre_torch.tools import parsers
from genre_torch.tools.common import check_output
from genre_torch.tools.predict import load_backbone, load_checkpoint

FORMATS = ("onnx", "torchscript")
SUPPORTED_STATE = {"numeric", "scaling", "categorical", "median", "center", "scale", "vocab", "classes", "indicators"}


class ExportedModel(nn.Module):
    """Raw feature matrix -> probabilities: impute, standardise, one-hot, missing indicators, backbone, softmax."""

    def __init__(self, backbone: nn.Module, state: dict[str, Any]) -> None:
        super().__init__()
        state = preprocessor_state(state)
        unsupported = sorted(k for k, v in state.items() if k not in SUPPORTED_STATE and v)
        if unsupported:
            raise GenreTorchError(
                f"export takes a numeric matrix and cannot carry this checkpoint's {', '.join(unsupported)} "
                "features (text metadata); score such a model with `genre-torch predict`"
            )
        self.backbone, self.num_numeric = backbone, len(state["numeric"])
        for name in ("median", "center", "scale"):
            self.register_buffer(name, torch.as_tensor(state[name], dtype=torch.float64))
        self.sizes = [len(state["vocab"][c]) for c in state["categorical"]]
        for j, size in enumerate(self.sizes):
            self.register_buffer(f"codes{j}", torch.arange(size, dtype=torch.float32))
        indicators = [state["numeric"].index(c) for c in state.get("indicators", [])]
        self.register_buffer("indicators", torch.tensor(indicators, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities of shape (rows, genres) for a raw matrix of shape (rows, columns)."""
        raw = x[:, : self.num_numeric].double()
        missing = torch.isnan(raw)
        parts = [((torch.where(missing, self.median, raw) - self.center) / self.scale).float()]
        for j in range(len(self.sizes)):
            column = x[:, self.num_numeric + j : self.num_numeric + j + 1]
            parts.append((column == getattr(self, f"codes{j}")).float())  # -1 / NaN match no category
        if len(self.indicators):
            parts.append(missing[:, self.indicators].float())
        return self.backbone(torch.cat(parts, dim=1)).softmax(dim=-1)


def describe(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The input contract of an exported model: column order, category lists, genre names."""
    state = data_state(ckpt)["preprocessor"]
    numeric = [{"name": c, "kind": "numeric", "missing": "NaN"} for c in state["numeric"]]
    categorical = [
        {"name": c, "kind": "categorical", "categories": list(state["vocab"][c]), "missing": "-1 or NaN"}
        for c in state["categorical"]
    ]
    spec = spec_from_checkpoint_state(data_state(ckpt))
    return {
        "dataset": spec.name,
        "spec": spec.to_dict(),  # the cleaning rules the input rows must have been through
        "input": "features",
        "output": "probabilities",
        "columns": numeric + categorical,
        "classes": list(state["classes"]),
        "notes": "numeric: cleaned raw value; categorical: index into categories; rows as DatasetSpec.clean gives",
    }


def raw_matrix(clean: pd.DataFrame, contract: dict[str, Any]) -> np.ndarray:
    """The exported model's input for cleaned rows (DatasetSpec.clean(df, training=False))."""
    columns = []
    for col in contract["columns"]:
        if col["kind"] == "numeric":
            columns.append(clean[col["name"]].to_numpy(np.float64))
        else:
            columns.append(pd.Categorical(clean[col["name"]], categories=col["categories"]).codes.astype(np.float64))
    return np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((len(clean), 0), np.float32)


def export(ckpt_path: str | os.PathLike, fmt: str, output: str | os.PathLike) -> dict[str, Any]:
    """Write the model and its sidecar JSON (both atomically, after both are built); return the input contract."""
    if fmt not in FORMATS:
        raise GenreTorchError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    if str(output).endswith(".json"):
        raise GenreTorchError(f"{output}: the .json name is taken by the sidecar file; use .onnx or .pt")
    sidecar = os.path.splitext(output)[0] + ".json"
    check_output(output, [ckpt_path])
    check_output(sidecar, [ckpt_path])
    ckpt = load_checkpoint(ckpt_path)
    backbone = load_backbone(ckpt)
    if isinstance(backbone, PackedEnsemble):  # the tracers cannot record vmap / functional_call: a loop of members
        backbone = backbone.unpack()
    wrapper = ExportedModel(backbone, data_state(ckpt)["preprocessor"]).eval()
    contract = describe(ckpt)
    example = torch.zeros(2, len(contract["columns"]))
    text = json.dumps(contract, indent=2)
    buffer = io.BytesIO()  # built in memory: a full disk then fails in a plain write, before anything is replaced
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notes of the exporters
        if fmt == "onnx":
            model = _onnx(wrapper, example, text)
        else:
            traced = torch.jit.trace(wrapper, example, check_trace=False)
            torch.jit.save(traced, buffer, _extra_files={"genre_torch.json": text})
            model = buffer.getvalue()
    with atomic_path(output) as tmp, atomic_path(sidecar) as tmp_sidecar:
        tmp.write_bytes(model)
        tmp_sidecar.write_text(text + "\n")
    return contract


def _onnx(wrapper: nn.Module, example: torch.Tensor, metadata: str) -> bytes:
    """ONNX via the TorchScript-based exporter (no onnxscript needed), genre names in metadata_props."""
    try:
        import onnx
    except ImportError:
        raise GenreTorchError("ONNX export needs the export extra: pip install -e '.[export]'") from None
    axes = {"features": {0: "rows"}, "probabilities": {0: "rows"}}
    buffer = io.BytesIO()
    torch.onnx.export(
        wrapper, (example,), buffer, input_names=["features"], output_names=["probabilities"],
        dynamic_axes=axes, opset_version=17, dynamo=False,
    )  # fmt: skip
    model = onnx.load_from_string(buffer.getvalue())
    classes = json.dumps(json.loads(metadata)["classes"])
    onnx.helper.set_model_props(model, {"genre_torch": metadata, "classes": classes})
    return model.SerializeToString()


def main(argv: list[str]) -> None:
    """`genre-torch export --ckpt_path CKPT --format onnx|torchscript --output FILE`."""
    args = parsers.export().parse_args(argv)
    contract = export(args.ckpt_path, args.format, args.output)
    sidecar = os.path.splitext(args.output)[0] + ".json"
    print(
        f"wrote {args.output} and {sidecar}: input 'features' float32 (rows, {len(contract['columns'])}) "
        f"in the column order of {sidecar}; output 'probabilities' (rows, {len(contract['classes'])})"
    )
