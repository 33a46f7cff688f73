"""Dataset specs: the schema and cleaning rules of a dataset, declared in a YAML file (built-ins ship here).

A spec file (see music_genre.yaml, spotify_tracks.yaml beside this module):

    name: my_songs                # file names, run folders and GENRE_TORCH_<NAME>_URL derive from it
    target: label                 # the class column
    numeric: auto                 # or a list; auto = every column not named below whose present values
                                  # are mostly (over half) numbers; headerless columns ("Unnamed: 0") never
    categorical: [key, mode]      # one-hot over the categories seen in training
    id_columns: [track_id]        # carried into predictions, never features
    meta: {artist: null}          # metadata columns for features=audio+meta: column -> separator or null
    text: {title: null}           # titles for audio+meta, as word/character n-grams: column -> null (defaults)
                                  # or {words: 2, chars: 4, min_songs: 2} (see core/data/text_encoding.py)
    song_id: track_id             # an id column naming the song: its rows share a split (split: song)
    ignore: [notes]               # columns that are none of the above
    valid_ranges: {duration_ms: [0, null]}  # values outside become missing (null: no bound)
    dedupe_on: [track_id, label]  # rows repeating these columns are dropped (training only)
    file_names: [dataset.csv]     # other names the file may have besides <name>.csv(.gz)
    sha256: ...                   # of the uncompressed CSV, checked by `genre-torch data download|check`
    source: {url: https://...}    # or {kaggle: owner/dataset, file: x.csv}: where `data download` gets it

Cleaning turns unparseable numbers, non-finite ones (inf, nan, |x| > 1e30) and values outside a valid
range into missing values (imputed with the training median), with one warning line per column.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from genre_torch.core.data.datasets.cleaning import (
    DataWarning,
    parses_as_numbers,
    range_label,
    to_category,
    to_numeric,
    warn_problems,
)
from genre_torch.core.data.datasets.leakage import leakage_lines
from genre_torch.core.data.datasets.schema import check_mapping, read_yaml, to_mapping
from genre_torch.core.errors import GenreTorchError

__all__ = ["DataWarning", "DatasetSpec", "get_spec", "load_spec", "spec_from_checkpoint_state", "to_category"]


@dataclass(frozen=True)
class DatasetSpec:
    """Schema and cleaning rules of one genre dataset; a new dataset is one more spec file."""

    name: str
    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    id_columns: tuple[str, ...] = ()
    file_names: tuple[str, ...] = ()
    valid_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    dedupe_on: tuple[str, ...] = ()
    sha256: str = ""
    meta: dict[str, str | None] = field(default_factory=dict)  # metadata column -> separator of multiple values
    ignore: tuple[str, ...] = ()
    text: dict[str, dict[str, int]] = field(default_factory=dict)  # title column -> n-gram options
    song_id: str | None = None  # id column naming the song (rows of one song stay in one split)
    source: dict[str, str] = field(default_factory=dict)  # url, or kaggle (owner/dataset) and file
    description: str = ""
    auto_numeric: bool = False  # `numeric: auto` not yet resolved against a file (resolve())

    @classmethod
    def from_dict(cls, data: Any, origin: str = "dataset spec") -> DatasetSpec:
        """A spec from plain primitives (a YAML file, a config entry, a checkpoint); origin names it in errors."""
        return cls(**check_mapping(data, origin))

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain primitives; from_dict(to_dict()) is an equal spec."""
        return to_mapping(self)

    @property
    def features(self) -> tuple[str, ...]:
        """All feature columns, numeric first."""
        return self.numeric + self.categorical

    def candidate_files(self) -> tuple[str, ...]:
        """File names this dataset may be stored under, in lookup order."""
        return (f"{self.name}.csv", f"{self.name}.csv.gz", *self.file_names)

    def resolve(self, df: pd.DataFrame) -> DatasetSpec:
        """The spec with `numeric: auto` replaced by the columns of df it selects (itself when explicit)."""
        if not self.auto_numeric:
            return self
        taken = {
            self.target,
            *self.categorical,
            *self.id_columns,
            *self.meta,
            *self.text,
            *self.ignore,
            *self.dedupe_on,
        }
        numeric = tuple(
            str(c)
            for c in df.columns
            if c not in taken and not str(c).startswith("Unnamed: ") and parses_as_numbers(df[c])
        )
        if not numeric and not self.categorical:
            raise GenreTorchError(f"{self.name}: numeric: auto found no numeric column besides those the spec names")
        stray = [c for c in self.valid_ranges if c not in numeric]
        if stray:
            raise GenreTorchError(f"{self.name}: valid_ranges names {stray[0]!r}, which is not a numeric column")
        return dataclasses.replace(self, numeric=numeric, auto_numeric=False)

    def check_columns(self, df: pd.DataFrame, *, training: bool = True) -> None:
        """Raise a clear error when required columns are missing."""
        extra = (self.target, *(c for c in self.dedupe_on if c != self.target)) if training else ()
        required = self.resolve(df).features + extra
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise GenreTorchError(
                f"{self.name}: the CSV lacks required column(s) {', '.join(missing)}; "
                f"expected at least: {', '.join(required)}"
            )

    def clean(
        self, df: pd.DataFrame, *, training: bool = True, problems: dict[str, Counter] | None = None
    ) -> pd.DataFrame:
        """Apply the cleaning rules; only `training` drops rows (empty, unlabeled, duplicate).

        Values turned into missing ones are counted per column: added to `problems` when given (the caller
        warns once, e.g. after the last chunk, with warn_problems), else warned here, one line per column.
        In training, a feature column left without any value is an error.
        """
        if self.auto_numeric:
            return self.resolve(df).clean(df, training=training, problems=problems)
        self.check_columns(df, training=training)
        if training:
            df = df.dropna(how="all")
            unlabeled = df[self.target].isna()
            if unlabeled.any():
                msg = f"{self.name}: dropped {int(unlabeled.sum())} row(s) without a {self.target} label"
                warnings.warn(msg, DataWarning)
                df = df[~unlabeled]
            df = df.assign(**{self.target: df[self.target].astype(str).str.strip()})
            if self.dedupe_on:
                df = df.drop_duplicates(subset=list(self.dedupe_on))
        found: dict[str, Counter] = {}
        numeric = {}
        for col in self.numeric:
            numeric[col], found[col] = to_numeric(df[col])
            if col in self.valid_ranges:
                lo, hi = self.valid_ranges[col]
                outside = numeric[col].notna() & ~numeric[col].between(lo, hi)
                numeric[col] = numeric[col].where(~outside)
                found[col][range_label(lo, hi)] = int(outside.sum())
        df = df.assign(**numeric, **{c: to_category(df[c]) for c in self.categorical}).reset_index(drop=True)
        if problems is None:
            warn_problems(self.name, found)
        else:
            for col, counts in found.items():
                problems.setdefault(col, Counter()).update(counts)
        empty = [c for c in self.features if df[c].isna().all()] if training and len(df) else []
        if empty:
            raise GenreTorchError(
                f"{self.name}: feature column(s) {', '.join(empty)} have no usable value (all missing, unparseable, "
                f"non-finite or out of range); see `genre-torch data check`"
            )
        if training:
            for line in leakage_lines(df, list(self.features), self.target):
                warnings.warn(f"{self.name}: {line}", DataWarning)
        return df


def _builtin_specs() -> dict[str, DatasetSpec]:
    folder = resources.files(__name__)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    specs = [DatasetSpec.from_dict(read_yaml(Path(str(f))), f"built-in spec {f.name}") for f in files]
    return {s.name: s for s in specs}


SPECS: dict[str, DatasetSpec] = _builtin_specs()
MUSIC_GENRE, SPOTIFY_TRACKS = SPECS["music_genre"], SPECS["spotify_tracks"]


def get_spec(name: str) -> DatasetSpec:
    """The built-in spec registered under `name`, or a clear error listing the known ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise GenreTorchError(
            f"unknown dataset {name!r}; known datasets: {', '.join(SPECS)} (or give the path of a .yaml spec)"
        ) from None


def load_spec(dataset: str | os.PathLike | Mapping[str, Any] | DatasetSpec) -> DatasetSpec:
    """A spec from a built-in name, the path of a .yaml spec file, or an inline mapping."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    if isinstance(dataset, Mapping):
        return DatasetSpec.from_dict(dataset, "the inline dataset spec")
    if isinstance(dataset, str) and dataset in SPECS:
        return SPECS[dataset]
    path = Path(dataset)
    if path.is_dir():
        raise GenreTorchError(f"dataset spec {path} is a folder; pass a .yaml spec file or a built-in dataset name")
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise GenreTorchError(f"dataset spec file {path} does not exist")
        return DatasetSpec.from_dict(read_yaml(path), str(path))
    return get_spec(str(dataset))


def spec_from_checkpoint_state(state: dict[str, Any]) -> DatasetSpec:
    """The spec a checkpoint was trained with: its stored spec, else (older checkpoints) the built-in of its name."""
    if state.get("spec") is not None:
        return DatasetSpec.from_dict(state["spec"], "the checkpoint's dataset spec")
    return get_spec(state["dataset"])
