"""A prepared dataset folder (written by `genre-torch prepare`): Parquet per split + the fitted state as JSON.

Layout: DIR/preprocessing.json and DIR/{train,val,test}/*.parquet with columns row_id (position of the
row in the cleaned file), label (class index) and features (list<float32>, the encoded matrix row).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genre_torch.core.compat import preprocessor_state
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.data.streaming import ParquetBatches, table_arrays
from genre_torch.core.errors import GenreTorchError

STATE_FILE = "preprocessing.json"
SPLITS = ("train", "val", "test")
FORMAT = 1


def is_prepared(path: str | os.PathLike | None) -> bool:
    """Whether `path` is a folder written by `genre-torch prepare`."""
    return path is not None and (Path(path) / STATE_FILE).is_file()


def state_to_json(state: dict[str, Any]) -> dict[str, Any]:
    """A Preprocessor.state_dict() with tensors as lists of floats (JSON round-trips float64 exactly)."""
    return {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}


def preprocessor_from_json(state: dict[str, Any]) -> Preprocessor:
    """The fitted Preprocessor of a preprocessing.json (of any version: compat.preprocessor_state)."""
    state = preprocessor_state(state)
    tensors = {k: torch.tensor(state[k], dtype=torch.float64) for k in ("median", "center", "scale")}
    return Preprocessor.from_state_dict({**state, **tensors})


def _pq() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise GenreTorchError("prepared Parquet folders need pyarrow: pip install pyarrow") from None
    return pq


def split_files(folder: Path, split: str) -> list[Path]:
    """The Parquet files of one split, in name order (the order the rows were written in)."""
    files = sorted(p for p in (folder / split).glob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        raise GenreTorchError(f"{folder / split} holds no Parquet files; run `genre-torch prepare` again")
    return files


class PreparedData:
    """Reads a prepared folder: its state, its row ids, whole splits as tensors, or streamed batches."""

    def __init__(self, path: str | os.PathLike, dataset: str | None = None) -> None:
        self.path = Path(path)
        if not is_prepared(self.path):
            raise GenreTorchError(f"{self.path} is not a prepared folder (no {STATE_FILE}); see `genre-torch prepare`")
        self.info = json.loads((self.path / STATE_FILE).read_text())
        if dataset is not None and self.info["dataset"] != dataset:
            raise GenreTorchError(
                f"{self.path} holds {self.info['dataset']}, not {dataset}; pass --data.dataset {self.info['dataset']}"
            )
        self.preprocessor = preprocessor_from_json(self.info["preprocessor"])

    def num_rows(self, split: str) -> int:
        """Rows of a split, from the Parquet footers."""
        pq = _pq()
        return sum(pq.ParquetFile(f).metadata.num_rows for f in split_files(self.path, split))

    def nbytes(self) -> int:
        """Bytes the three splits take as in-memory tensors."""
        width = self.preprocessor.num_features
        return sum(self.num_rows(s) for s in SPLITS) * (4 * width + 16)

    def fits_in_memory(self, share: float = 0.5) -> bool:
        """Whether the tensors take less than `share` of the memory available now (MemAvailable on Linux)."""
        try:
            meminfo = Path("/proc/meminfo").read_text()
            free = int(meminfo.split("MemAvailable:")[1].split()[0]) * 1024
        except (OSError, IndexError, ValueError):
            return True
        return self.nbytes() < share * free

    def row_ids(self, split: str) -> np.ndarray:
        """Sorted row ids (positions in the cleaned file) of a split."""
        table = _pq().read_table(self.path / split, columns=["row_id"])
        return np.sort(table.column("row_id").to_numpy())

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of a whole split in row_id order, i.e. the order the CSV path uses."""
        ids, y, x = table_arrays(_pq().read_table(self.path / split))
        order = np.argsort(ids, kind="stable")
        return torch.from_numpy(np.ascontiguousarray(x[order])), torch.from_numpy(y[order])

    def batches(
        self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> Any:
        """A split streamed from its Parquet row groups (streaming.ParquetBatches)."""
        return ParquetBatches(split_files(self.path, split), batch_size, shuffle, seed, rank, world_size)


def load_prepared(
    path: str | os.PathLike, dataset: str, settings: dict[str, Any], stream: bool | None = None
) -> tuple[PreparedData, dict[str, np.ndarray], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """The prepared folder at `path` for a datamodule's data settings: its reader, the row ids of each split, and
    the splits as tensors (none when streamed: when `stream` asks for it, or by default when they would not fit)."""
    data = PreparedData(path, dataset)
    split = data.info["split"]
    wanted = {"test_fraction": settings["test_fraction"], "val_fraction": settings["val_fraction"]}
    wanted["seed"] = settings["split_seed"]
    if wanted != split:
        raise GenreTorchError(f"{path} was prepared with split {split}, not {wanted}; prepare it again")
    if (
        settings.get("features", "audio") != "audio"
        or settings.get("missing_indicators")
        or settings.get("scaling", "standard") != "standard"
        or settings.get("split", "canonical") != "canonical"
    ):
        raise GenreTorchError(
            f"{path} holds the standardised audio feature set on the canonical split; train from the CSV"
        )
    splits = {s: data.row_ids(s) for s in SPLITS}
    streamed = stream or (stream is None and not data.fits_in_memory())
    return data, splits, {} if streamed else {s: data.tensors(s) for s in SPLITS}


def compare(a: str | os.PathLike, b: str | os.PathLike) -> dict[str, Any]:
    """Parity of two prepared folders: split membership, labels, encoded values and fitted state."""
    pa_, pb = PreparedData(a), PreparedData(b)
    out: dict[str, Any] = {"max_abs_diff": 0.0}
    for split in SPLITS:
        ia, ya, xa = table_arrays(_pq().read_table(pa_.path / split))
        ib, yb, xb = table_arrays(_pq().read_table(pb.path / split))
        oa, ob = np.argsort(ia), np.argsort(ib)
        same = np.array_equal(ia[oa], ib[ob])
        out[f"{split}_rows"] = (len(ia), len(ib))
        out[f"{split}_same_rows"] = same
        out[f"{split}_same_labels"] = same and np.array_equal(ya[oa], yb[ob])
        if same and xa.shape == xb.shape:
            diff = float(np.abs(xa[oa].astype(np.float64) - xb[ob]).max()) if len(xa) else 0.0
            out["max_abs_diff"] = max(out["max_abs_diff"], diff)
        else:
            out["max_abs_diff"] = math.inf
    sa, sb = (preprocessor_state(p.info["preprocessor"]) for p in (pa_, pb))
    out["same_vocab_classes"] = all(sa[k] == sb[k] for k in ("numeric", "categorical", "vocab", "classes"))
    out["max_rel_state_diff"] = max(
        float(np.max(np.abs(np.subtract(sa[k], sb[k])) / np.maximum(np.abs(sb[k]), 1e-300)))
        for k in ("median", "center", "scale")
    )
    return out
