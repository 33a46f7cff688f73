"""Dataset specs: the schema and cleaning rules of each dataset, declared in one place."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from genre_torch.core.errors import GenreTorchError


@dataclass(frozen=True)
class DatasetSpec:
    """Schema and cleaning rules of one genre dataset; a new dataset is one more instance."""

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

    @property
    def features(self) -> tuple[str, ...]:
        """All feature columns, numeric first."""
        return self.numeric + self.categorical

    def candidate_files(self) -> tuple[str, ...]:
        """File names this dataset may be stored under, in lookup order."""
        return (f"{self.name}.csv", f"{self.name}.csv.gz", *self.file_names)

    def check_columns(self, df: pd.DataFrame, *, training: bool = True) -> None:
        """Raise a clear error when required columns are missing."""
        extra = (self.target, *(c for c in self.dedupe_on if c != self.target)) if training else ()
        required = self.features + extra
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise GenreTorchError(
                f"{self.name}: the CSV lacks required column(s) {', '.join(missing)}; "
                f"expected at least: {', '.join(required)}"
            )

    def clean(self, df: pd.DataFrame, *, training: bool = True) -> pd.DataFrame:
        """Apply the cleaning rules; only `training` drops rows (empty, unlabeled, duplicate)."""
        self.check_columns(df, training=training)
        if training:
            df = df.dropna(how="all")
            unlabeled = df[self.target].isna()
            if unlabeled.any():
                warnings.warn(f"{self.name}: dropped {int(unlabeled.sum())} row(s) without a {self.target} label")
                df = df[~unlabeled]
            df = df.assign(**{self.target: df[self.target].astype(str).str.strip()})
            if self.dedupe_on:
                df = df.drop_duplicates(subset=list(self.dedupe_on))
        df = df.assign(**{c: to_numeric(df[c], c) for c in self.numeric})
        for col, (lo, hi) in self.valid_ranges.items():
            df[col] = df[col].where(df[col].between(lo, hi))
        df = df.assign(**{c: to_category(df[c]) for c in self.categorical})
        return df.reset_index(drop=True)


def to_numeric(values: pd.Series, name: str) -> pd.Series:
    """Parse a column as float64; unparseable values become NaN with a warning that counts them."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    parsed = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = int((parsed.isna() & values.notna()).sum())
    if bad:
        warnings.warn(f"column {name}: {bad} unparseable value(s) treated as missing and imputed")
    return parsed


def to_category(values: pd.Series) -> pd.Series:
    """Canonical category strings: whole numbers lose their '.0', text is stripped, missing stays NaN."""

    def canon(v: object) -> object:
        if isinstance(v, float) and np.isnan(v):
            return np.nan
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and float(v).is_integer():
            return str(int(v))
        text = str(v).strip()
        try:
            number = float(text)
        except ValueError:
            return text or np.nan
        return str(int(number)) if number.is_integer() else text

    if values.dtype == object:  # mixed Python objects: canonicalise one by one (True and 1 must stay apart)
        return values.astype(object).map(canon, na_action="ignore")
    codes, uniques = pd.factorize(values)  # one dtype: canonicalise each distinct value once (fast on big files)
    mapped = np.array([canon(v) for v in uniques.astype(object)] + [np.nan], dtype=object)
    return pd.Series(mapped[codes], index=values.index, name=values.name)  # code -1: missing


MUSIC_GENRE = DatasetSpec(
    name="music_genre",
    target="music_genre",
    numeric=(
        "popularity",
        "acousticness",
        "danceability",
        "duration_ms",
        "energy",
        "instrumentalness",
        "liveness",
        "loudness",
        "speechiness",
        "tempo",
        "valence",
    ),
    categorical=("key", "mode"),
    id_columns=("instance_id", "artist_name", "track_name"),
    valid_ranges={"duration_ms": (0.0, float("inf"))},  # -1 marks an unknown duration
    sha256="6e1a77a46c88226e24aa36facf81235315b4680054bc7f3d3c609c1b05711078",
    meta={"artist_name": None},
)

SPOTIFY_TRACKS = DatasetSpec(
    name="spotify_tracks",
    target="track_genre",
    numeric=(
        "popularity",
        "duration_ms",
        "danceability",
        "energy",
        "loudness",
        "speechiness",
        "acousticness",
        "instrumentalness",
        "liveness",
        "valence",
        "tempo",
    ),
    categorical=("explicit", "key", "mode", "time_signature"),
    id_columns=("track_id", "artists", "album_name", "track_name"),
    file_names=("dataset.csv",),
    dedupe_on=("track_id", "track_genre"),
    sha256="b202fa49909b2d5cef71a04b1d21243cfeb36414535f2ca9272aa646721177bd",
    meta={"artists": ";", "album_name": None},
)

SPECS: dict[str, DatasetSpec] = {s.name: s for s in (MUSIC_GENRE, SPOTIFY_TRACKS)}


def get_spec(name: str) -> DatasetSpec:
    """The spec registered under `name`, or a clear error listing the known ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise GenreTorchError(f"unknown dataset {name!r}; known datasets: {', '.join(SPECS)}") from None
