"""Loading, the canonical split, and the in-memory GenreDataModule that batches by index slicing."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from genre_torch.core.data.datasets import load_spec
from genre_torch.core.data.files import find_data_file, read_csv
from genre_torch.core.data.prepared import is_prepared, load_prepared
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.data.songs import song_groups
from genre_torch.core.data.split import artist_groups, group_split_indices, song_split_indices, split_indices
from genre_torch.core.errors import GenreTorchError

# encoded datasets of this process by what they depend on (GenreDataModule._cache_key): read once per search
LOADED: dict[str, tuple] = {}


class TensorBatches:
    """Batches of in-memory tensors by slicing with a (shuffled) index permutation; no per-row collate.

    With several processes each rank takes every world_size-th index of the same permutation and
    all ranks yield the same number of batches, so every row is used exactly once per epoch.
    The shuffle depends only on (seed, epoch); Lightning sets the epoch through `sampler.set_epoch`,
    as for a DistributedSampler, so a resumed run sees the same order as an uninterrupted one.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        self.sampler, self.batch_sampler = self, None  # the hooks Lightning looks for on a loader

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffle of this epoch (called by Lightning before each training epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.x) / self.world_size) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        if self.shuffle:  # drawn where the data lives: no host work or copy per epoch on a GPU
            gen = torch.Generator(self.x.device).manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=gen, device=self.x.device)
        else:
            order = torch.arange(n, device=self.x.device)
        if self.world_size == 1 and not self.shuffle:
            for start in range(0, n, self.batch_size):  # plain views, no gather
                yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]
            return
        mine = order[self.rank :: self.world_size]
        # one process: batches of batch_size, the last one smaller, as a DataLoader gives them; several: the
        # same number of near-equal batches on every rank (rank shards differ by a row: a rank must not run dry)
        parts = mine.split(self.batch_size) if self.world_size == 1 else mine.tensor_split(len(self))
        for idx in parts:
            yield self.x[idx], self.y[idx]


class BatchGroups:
    """Lists of up to k consecutive batches of a loader, each list one training_step call (k optimiser steps).

    Lightning's per-call cost (hooks, progress, logging checks) is about a millisecond on CPU, as much as
    a step of a small MLP; grouping spreads it over k steps without changing a step (cf. Keras'
    steps_per_execution). The batches, their order and the optimiser steps are those of k = 1.
    """

    def __init__(self, batches: Iterable, k: int) -> None:
        self.batches, self.k = batches, k
        self.sampler, self.batch_sampler = getattr(batches, "sampler", batches), None  # set_epoch reaches the batches
        self.optimizer_steps = len(batches)

    def __len__(self) -> int:
        return math.ceil(self.optimizer_steps / self.k)

    def __iter__(self) -> Iterator[list]:
        group: list = []
        for batch in self.batches:
            group.append(batch)
            if len(group) == self.k:
                yield group
                group = []
        if group:
            yield group


class GenreDataModule(pl.LightningDataModule):
    """Loads, cleans, splits and encodes a genre dataset once, then serves it from memory."""

    def __init__(
        self,
        dataset: str | dict[str, Any] = "music_genre",
        path: str | None = None,
        batch_size: int = 512,
        batches_per_step: int = 1,
        eval_batch_size: int = 8192,
        test_fraction: float = 0.2,
        val_fraction: float = 0.1,
        split_seed: int = 42,
        shuffle_seed: int = 0,
        features: Literal["audio", "audio+meta"] = "audio",
        meta_columns: list[str] | None = None,
        meta_smoothing: float = 1.0,
        meta_folds: int = 5,
        missing_indicators: bool = False,
        scaling: Literal["standard", "robust"] = "standard",
        split: Literal["canonical", "artist", "song"] = "canonical",
        stream: bool | None = None,
    ) -> None:
        """
        Args:
            dataset: A built-in dataset (music_genre, spotify_tracks), the path of a dataset spec .yaml file,
                or a spec written inline as a mapping (format: genre_torch/core/data/datasets/__init__.py).
            path: CSV (.csv or .csv.gz) to read; default: look in $GENRE_TORCH_DATA_DIR, then ./data/.
            batch_size: Training batch size.
            batches_per_step: 1 trains on Lightning's standard path. K > 1 opts into the fast path
                (genre_torch/core/training/fast.py): each training_step call takes K batches, still one optimiser step
                each, which spreads Lightning's per-call cost thinner; options it cannot honour are refused.
            eval_batch_size: Batch size for validation, test and predict.
            test_fraction: Share of all rows held out for test (stratified).
            val_fraction: Share of the remaining rows held out for validation (stratified).
            split_seed: Seed of the split (42 in the canonical protocol).
            shuffle_seed: Base seed of the per-epoch training shuffle (epoch e uses shuffle_seed + e).
            features: audio, or audio+meta: adds target-encoded metadata columns (artist; album for
                spotify_tracks) and title n-grams (track name; album name for spotify_tracks), out-of-fold on
                training rows (folds grouped by song), full-train statistics elsewhere.
            meta_columns: Metadata and title columns for audio+meta (default: all of the spec's meta and text),
                e.g. [track_name] to measure the titles alone.
            meta_smoothing: Pseudo-count m pulling a rare artist's genre frequencies towards the prior.
            meta_folds: Folds of the out-of-fold encoding of training rows.
            missing_indicators: Add a 0/1 column per numeric column that has missing values in training.
            scaling: standard ((x - mean) / std) or robust ((x - median) / interquartile range, RealMLP's
                robust scaling; pair it with a backbone's smooth clipping), all statistics from training rows.
            split: canonical (stratified rows), artist (no first artist in two splits) or song (no song in two
                splits: rows with identical features or the same spec.song_id); see core/data/split.py,
                core/data/songs.py.
            stream: With a prepared folder as path: read batches from Parquet row groups instead of holding
                the splits in memory (default: only when they would take over half of the free memory).
        """
        super().__init__()
        self.save_hyperparameters()
        self.spec = load_spec(dataset)
        self.path, self.batch_size, self.eval_batch_size = path, batch_size, eval_batch_size
        _check_settings(batch_size, batches_per_step, eval_batch_size, test_fraction, val_fraction, split_seed)
        if meta_folds < 1 or meta_smoothing < 0:
            raise GenreTorchError(
                f"--data.meta_folds must be >= 1 and --data.meta_smoothing >= 0: {meta_folds}, {meta_smoothing}"
            )
        self.batches_per_step = batches_per_step
        self.test_fraction, self.val_fraction = test_fraction, val_fraction
        self.split_seed, self.shuffle_seed = split_seed, shuffle_seed
        if features not in ("audio", "audio+meta"):
            raise GenreTorchError(f"unknown feature set {features!r}; known: audio, audio+meta")
        known = list(dict.fromkeys([*self.spec.meta, *self.spec.text]))
        unknown = sorted(set(meta_columns or ()) - set(known))
        if unknown:
            raise GenreTorchError(f"{unknown} are not metadata columns of {self.spec.name}; known: {', '.join(known)}")
        if split not in ("canonical", "artist", "song"):
            raise GenreTorchError(f"unknown split {split!r}; known: canonical, artist, song")
        chosen = [c for c in known if (meta_columns is None or c in meta_columns) and features == "audio+meta"]
        self.preprocessor = Preprocessor(
            self.spec.numeric,
            self.spec.categorical,
            {c: s for c, s in self.spec.meta.items() if c in chosen},
            meta_smoothing,
            meta_folds,
            missing_indicators,
            {c: o for c, o in self.spec.text.items() if c in chosen},
            scaling,
        )
        self.split = split
        self._songs: np.ndarray | None = None
        self.frame: pd.DataFrame | None = None
        self.splits: dict[str, np.ndarray] = {}
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.stream, self.prepared = stream, None  # a folder written by `genre-torch prepare` (prepared.py)

    def load(self) -> GenreDataModule:
        """Read, clean, split and encode the data (idempotent; runs on first use)."""
        if self.tensors or self.prepared is not None:
            return self
        if is_prepared(self.path):
            loaded = load_prepared(self.path, self.spec.name, self.hparams, self.stream)
            self.prepared, self.splits, self.tensors = loaded
            self.preprocessor = self.prepared.preprocessor
            return self
        path = find_data_file(self.spec, self.path)
        key = self._cache_key(path)
        if key in LOADED:  # the same file and settings earlier in this process (the trials of a search)
            self.spec, self.frame, self._songs, self.splits, self.preprocessor, tensors = LOADED[key]
            self.tensors = dict(tensors)
            return self
        self._read(path)
        LOADED[key] = (self.spec, self.frame, self._songs, self.splits, self.preprocessor, dict(self.tensors))
        while len(LOADED) > 2:  # a few encoded datasets at most
            LOADED.pop(next(iter(LOADED)))
        return self

    def _cache_key(self, path: Path) -> str:
        """What the encoded data depends on: the spec, the file (and its version) and the data settings."""
        stat = path.stat()
        ignored = ("batch_size", "batches_per_step", "eval_batch_size", "shuffle_seed", "stream")
        settings = {k: v for k, v in self.hparams.items() if k not in ignored and not k.startswith("_")}
        file = [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
        return json.dumps([self.spec.to_dict(), file, settings], sort_keys=True, default=str)

    def _read(self, path: Path) -> None:
        """Read, clean, split and encode the CSV at path into frame, splits and tensors."""
        raw = read_csv(path)
        self.spec = self.spec.resolve(raw)  # `numeric: auto` becomes the file's numeric columns, stored so
        self.preprocessor.numeric = list(self.spec.numeric)  # (checkpoints) that predict uses the same ones
        frame = self.spec.clean(raw)
        self.frame, self._songs = frame, None
        labels, groups, fractions = frame[self.spec.target], None, (self.test_fraction, self.val_fraction)
        if self.split == "artist":
            if not self.spec.meta:
                raise GenreTorchError(
                    f"--data.split artist needs an artist column: {self.spec.name}'s spec declares no meta column; "
                    "use --data.split song or canonical, or add the artist column under meta in the spec"
                )
            all_groups = artist_groups(frame[next(iter(self.spec.meta))])
            self.splits = group_split_indices(labels.to_numpy(), all_groups, *fractions, self.split_seed)
            groups = all_groups[self.splits["train"]]  # the out-of-fold encoding folds by artist too
        elif self.split == "song":
            self.splits = song_split_indices(labels.to_numpy(), self.songs, *fractions, self.split_seed)
        else:
            self.splits = split_indices(labels, *fractions, self.split_seed)
        pre, target, train = self.preprocessor, self.spec.target, self.splits["train"]
        songs = self.songs[train] if pre.meta or pre.text else None  # out-of-fold folds never split a song
        train_x = pre.fit_transform(frame, frame[target].iloc[train], self.split_seed, train, groups, songs)
        for name, idx in self.splits.items():
            x = train_x if name == "train" else pre.transform(frame, rows=idx)
            self.tensors[name] = (x, pre.encode_labels(frame[target].iloc[idx]))

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to score raw rows later: dataset name, spec (`numeric: auto` resolved), fitted
        preprocessing (with the genre names). Lightning saves it in every checkpoint of a run."""
        if not self.tensors and self.prepared is None:
            return {}
        return {"dataset": self.spec.name, "spec": self.spec.to_dict(), "preprocessor": self.preprocessor.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A checkpoint's data state: the genres must be the ones this data gives (a resume or an evaluation)."""
        classes = (state_dict.get("preprocessor") or {}).get("classes")
        if classes is not None and self.load().preprocessor.classes != list(classes):
            raise GenreTorchError(
                f"the checkpoint was trained on other genres than {self.spec.name}'s data here "
                f"({len(classes)} against {len(self.preprocessor.classes)}): pass the data it was trained on"
            )

    @property
    def songs(self) -> np.ndarray:
        """Song id of every row of the cleaned frame (core/data/songs.py: identical features or the same song_id)."""
        if self._songs is None:
            if self.frame is None:
                self.load()
            if self.frame is None:
                raise GenreTorchError("songs are known only for data read from a CSV, not from a prepared folder")
            self._songs = song_groups(self.frame, self.spec.features, self.spec.song_id)
        return self._songs

    @property
    def num_features(self) -> int:
        """Width of the encoded feature matrix (linked into the model by the CLI)."""
        return self.load().preprocessor.num_features

    @property
    def num_numeric(self) -> int:
        """Leading standardised numeric columns of the encoded matrix (linked into the model by the CLI)."""
        return len(self.load().preprocessor.numeric)

    @property
    def num_classes(self) -> int:
        """Number of genres (linked into the model by the CLI)."""
        return len(self.load().preprocessor.classes)

    def setup(self, stage: str | None = None) -> None:
        """Load the data and, when a trainer is attached, move the tensors to its device once."""
        self.load()
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.tensors = {k: (x.to(device), y.to(device)) for k, (x, y) in self.tensors.items()}

    def train_dataloader(self) -> TensorBatches | BatchGroups:
        """Shuffled training batches, sharded by rank under DDP (in groups of batches_per_step on the fast path)."""
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        if not self.tensors:  # a prepared folder, streamed
            batches = self.prepared.batches("train", self.batch_size, True, self.shuffle_seed, rank, world)
        else:
            x, y = self.tensors["train"]
            batches = TensorBatches(x, y, self.batch_size, True, self.shuffle_seed, rank, world)
        if self.batches_per_step == 1:
            return batches
        if self.trainer is not None and self.trainer.lightning_module.automatic_optimization:
            raise GenreTorchError(
                "--data.batches_per_step > 1 groups batches for the fast path: train with its callback, "
                "Trainer(callbacks=[genre_torch.core.training.fast.FastPath()]) (GenreCLI adds it), "
                "or pass batches_per_step=1"
            )
        return BatchGroups(batches, self.batches_per_step)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """In-memory batches are already on the device (setup); only streamed ones are moved."""
        return batch if self.tensors else super().transfer_batch_to_device(batch, device, dataloader_idx)

    def val_dataloader(self) -> TensorBatches:
        """Validation batches in file order."""
        return self._shard("val")

    def test_dataloader(self) -> TensorBatches:
        """Test batches in file order."""
        return self._shard("test")

    def _shard(self, split: str) -> TensorBatches:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        if not self.tensors:  # a prepared folder, streamed
            return self.prepared.batches(split, self.eval_batch_size, rank=rank, world_size=world)
        x, y = self.tensors[split]
        return TensorBatches(x, y, self.eval_batch_size, rank=rank, world_size=world)


def _check_settings(
    batch_size: int, batches_per_step: int, eval_batch_size: int, test_fraction: float, val_fraction: float, seed: int
) -> None:
    """One-line errors for data settings outside their range, before anything is read or written."""
    checks = [
        (batch_size >= 1, f"--data.batch_size must be at least 1, got {batch_size}"),
        (batches_per_step >= 1, f"--data.batches_per_step must be at least 1, got {batches_per_step}"),
        (eval_batch_size >= 1, f"--data.eval_batch_size must be at least 1, got {eval_batch_size}"),
        (0 < test_fraction < 1, f"--data.test_fraction must be in (0, 1), got {test_fraction}"),
        (0 < val_fraction < 1, f"--data.val_fraction must be in (0, 1), got {val_fraction}"),
        (0 <= seed < 2**32, f"--data.split_seed must be in [0, 2**32), got {seed}"),
    ]
    for ok, message in checks:
        if not ok:
            raise GenreTorchError(message)
