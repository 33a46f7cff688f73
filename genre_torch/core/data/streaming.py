"""ParquetBatches: training batches read row group by row group from a prepared split, for data larger than memory."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


def table_arrays(table: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row_id, label, features) numpy arrays of a pyarrow table with those columns."""
    features = table.column("features").combine_chunks()
    values = features.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    width = len(features[0]) if len(features) else 0
    ids = table.column("row_id").to_numpy() if "row_id" in table.column_names else np.empty(0, np.int64)
    return ids, table.column("label").to_numpy().astype(np.int64), values.reshape(len(features), width)


class ParquetBatches:
    """Batches streamed from Parquet row groups; holds one row group and one batch block in memory at a time.

    Shuffling is by block, not global: each epoch visits the row groups in a random order and permutes
    the rows inside each one (seeded by seed + epoch, like TensorBatches). This relies on `prepare`
    storing rows in a random order, so that a row group is a mix of all genres. Under DDP every rank reads
    the same stream and keeps every world_size-th row of each block of batch_size * world_size rows,
    so all ranks yield the same number of batches and every row is used once per epoch.
    """

    def __init__(
        self,
        files: list[Path],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        import pyarrow.parquet as pq

        self.files, self.batch_size, self.shuffle = list(files), batch_size, shuffle
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        metas = [pq.ParquetFile(f).metadata for f in self.files]
        self.pieces = [(i, g) for i, m in enumerate(metas) for g in range(m.num_row_groups)]
        self.rows = sum(m.num_rows for m in metas)
        self.sampler, self.batch_sampler = self, None  # the hooks Lightning looks for on a loader

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffle of this epoch (called by Lightning before each training epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.rows / (self.batch_size * self.world_size))

    def _row_groups(self, rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        import pyarrow.parquet as pq

        order = rng.permutation(len(self.pieces)) if rng is not None else range(len(self.pieces))
        handles: dict[int, pq.ParquetFile] = {}
        for k in order:
            file_idx, group = self.pieces[k]
            handle = handles.setdefault(file_idx, pq.ParquetFile(self.files[file_idx]))
            _, y, x = table_arrays(handle.read_row_group(group, columns=["label", "features"]))
            if rng is not None:
                perm = rng.permutation(len(y))
                x, y = x[perm], y[perm]
            yield x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, self.epoch]) if self.shuffle else None
        block = self.batch_size * self.world_size
        carry_x, carry_y = None, None  # rows left over from the previous row group
        for x, y in self._row_groups(rng):
            if carry_x is not None:
                x, y = np.concatenate([carry_x, x]), np.concatenate([carry_y, y])
            full = len(y) // block * block
            for start in range(0, full, block):
                yield self._take(x[start : start + block], y[start : start + block])
            carry_x, carry_y = x[full:], y[full:]
        if carry_y is not None and len(carry_y):
            yield self._take(carry_x, carry_y)

    def _take(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of a block."""
        part = slice(self.rank, None, self.world_size)
        return torch.from_numpy(np.ascontiguousarray(x[part])), torch.from_numpy(y[part])
