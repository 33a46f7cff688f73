"""Preprocessor: imputation, one-hot encoding, standardisation and label encoding, fitted on training rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from genre_torch.core.compat import preprocessor_state
from genre_torch.core.data.target_encoding import TargetEncoder
from genre_torch.core.data.text_encoding import TextEncoder
from genre_torch.core.errors import GenreTorchError

CHUNK_ROWS = 1 << 18  # rows encoded at a time: bounds the float64 intermediates of a large split
SCALINGS = ("standard", "robust")


def standard_scale(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per column: mean and standard deviation."""
    return np.array([c.mean() for c in columns]), np.array([c.std() for c in columns])


def robust_scale(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per column: median and interquartile range, or half the min-max range where the quartiles are equal
    (a mostly-constant column keeps its rare values distinct instead of blowing them up)."""
    if not columns or not len(columns[0]):
        return np.zeros(len(columns)), np.ones(len(columns))
    q = np.array([np.quantile(c, [0.0, 0.25, 0.5, 0.75, 1.0]) for c in columns])
    iqr, half_range = q[:, 3] - q[:, 1], (q[:, 4] - q[:, 0]) / 2
    return q[:, 2], np.where(iqr > 0, iqr, half_range)


class Preprocessor:
    """Turns clean feature columns into a float32 matrix and genre names into class indices.

    Numeric columns: missing values get the training median, then (x - center) / scale: training mean and
    std (scaling="standard"), or training median and interquartile range (scaling="robust", after RealMLP;
    half the min-max range where the quartiles are equal), kept in `center` and `scale`. Categorical columns:
    one-hot over the categories seen in training rows; an unseen or missing category is the all-zero vector.
    Optional extras, appended after these columns: missing-value indicators (numeric columns with gaps in
    training), target-encoded metadata columns (target_encoding.TargetEncoder), then target-encoded title n-grams
    (text_encoding.TextEncoder). Because training rows get an out-of-fold encoding of these (folds grouped by song),
    encode them with fit_transform(); transform() encodes any other rows with full-train statistics.
    All fitted state is plain tensors and lists.
    """

    def __init__(
        self,
        numeric: list[str] | tuple[str, ...],
        categorical: list[str] | tuple[str, ...],
        meta: dict[str, str | None] | None = None,
        smoothing: float = 1.0,
        folds: int = 5,
        missing_indicators: bool = False,
        text: dict[str, dict[str, int]] | None = None,
        scaling: str = "standard",
    ) -> None:
        if scaling not in SCALINGS:
            raise GenreTorchError(f"unknown scaling {scaling!r}; known: {', '.join(SCALINGS)}")
        self.scaling = scaling
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.median = self.center = self.scale = torch.empty(0)
        self.vocab: dict[str, list[str]] = {}
        self.classes: list[str] = []
        self.meta = dict(meta or {})  # column -> separator of multi-valued text (None: one value)
        self.smoothing, self.folds, self.missing_indicators = smoothing, folds, missing_indicators
        self.indicators: list[str] = []
        self.encoders: dict[str, TargetEncoder] = {}
        self.text = {c: dict(o) for c, o in (text or {}).items()}  # title column -> n-gram options
        self.text_encoders: dict[str, TextEncoder] = {}

    @property
    def fitted(self) -> bool:
        """Whether fit() or load_state_dict() has run."""
        return bool(self.classes)

    @property
    def num_features(self) -> int:
        """Width of the encoded feature matrix."""
        meta = sum(e.num_classes + 1 for e in self._all_encoders())
        return len(self.numeric) + sum(len(v) for v in self.vocab.values()) + len(self.indicators) + meta

    @property
    def feature_names(self) -> list[str]:
        """Name of every encoded column, in matrix order."""
        names = self.numeric + [f"{c}={v}" for c in self.categorical for v in self.vocab[c]]
        return (
            names
            + [f"{c}#missing" for c in self.indicators]
            + [n for e in self._all_encoders() for n in e.feature_names]
        )

    def _all_encoders(self) -> list[TargetEncoder | TextEncoder]:
        """Metadata encoders, then title encoders: the order of their columns."""
        return [*self.encoders.values(), *self.text_encoders.values()]

    def fit(
        self,
        df: pd.DataFrame,
        labels: pd.Series,
        rows: np.ndarray | None = None,
        songs: np.ndarray | None = None,
        encoders: bool = True,
    ) -> Preprocessor:
        """Fit all state on training rows only (rows: their positions in df, default all; labels and songs, the
        song id of each training row (core/data/songs.py; default: each row its own), are theirs). encoders=False
        leaves the metadata and title encoders unfitted (fit_transform fits them in its out-of-fold pass)."""

        def pick(col: str) -> pd.Series:
            return df[col] if rows is None else df[col].iloc[rows]

        values = np.empty((len(df) if rows is None else len(rows), len(self.numeric)), order="F")
        for j, col in enumerate(self.numeric):  # one column-major float64 copy, built column by column
            values[:, j] = pick(col).to_numpy(np.float64)
        median = np.nanmedian(values, axis=0) if len(values) else np.zeros(len(self.numeric))
        median = np.where(np.isnan(median), 0.0, median)  # a column that is all missing in training
        missing = np.isnan(values)
        gaps = missing.any(0)
        np.copyto(values, median, where=missing)  # filled in place; column by column below: no full-size temporaries
        del missing
        columns = [values[:, j] for j in range(values.shape[1])]
        center, scale = robust_scale(columns) if self.scaling == "robust" else standard_scale(columns)
        self.median = torch.tensor(median, dtype=torch.float64)
        self.center = torch.tensor(center, dtype=torch.float64)
        self.scale = torch.tensor(np.where(scale > 0, scale, 1.0), dtype=torch.float64)
        self.vocab = {c: sorted(pick(c).dropna().unique().tolist()) for c in self.categorical}
        self.classes = sorted(labels.unique().tolist())
        self.indicators = [c for c, gap in zip(self.numeric, gaps, strict=True) if gap and self.missing_indicators]
        self._check_meta(df)
        self.encoders = {c: TargetEncoder(c, sep, self.smoothing) for c, sep in self.meta.items()}
        self.text_encoders = {c: TextEncoder(c, **o, smoothing=self.smoothing) for c, o in self.text.items()}
        codes = self.encode_labels(labels).numpy()
        for e in self._all_encoders():
            e.num_classes = len(self.classes)  # the width of its columns, known before it is fitted
            if encoders:
                e.fit(pick(e.column), codes, len(self.classes), *([songs] if isinstance(e, TextEncoder) else []))
        return self

    def fit_transform(
        self,
        df: pd.DataFrame,
        labels: pd.Series,
        seed: int = 0,
        rows: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        songs: np.ndarray | None = None,
    ) -> torch.Tensor:
        """Fit on training rows and encode them; metadata and title columns get an out-of-fold encoding.

        rows: positions of the training rows in df (default: all; labels are those rows' labels); they
        are read column by column and encoded chunk by chunk, never copied as a whole frame.
        groups: a group id per training row (artist-grouped split): out-of-fold folds never split a group.
        songs: the song id per training row (core/data/songs.py): folds never split a song (default: groups), and
            title tokens count only when found in enough distinct songs.
        """
        groups = songs if groups is None else groups
        self.fit(df, labels, rows, songs, encoders=False)
        x = self._encode(df, meta=False, width=self.num_features, rows=rows)  # metadata columns filled in below
        codes = self.encode_labels(labels).numpy()
        start = x.shape[1] - sum(e.num_classes + 1 for e in self._all_encoders())
        for e in self._all_encoders():
            values = df[e.column] if rows is None else df[e.column].iloc[rows]
            extra = {"songs": songs} if isinstance(e, TextEncoder) else {}
            oof = e.fit_transform_oof(values, codes, len(self.classes), self.folds, seed, groups, **extra)
            x[:, start : start + oof.shape[1]] = oof
            start += oof.shape[1]
        return x

    def _check_meta(self, df: pd.DataFrame) -> None:
        missing = [c for c in dict.fromkeys([*self.meta, *self.text]) if c not in df.columns]
        if missing:
            raise GenreTorchError(f"metadata feature(s) need column(s) {', '.join(missing)}, absent from the data")

    def transform(self, df: pd.DataFrame, rows: np.ndarray | None = None) -> torch.Tensor:
        """Encode clean feature columns (of the given row positions, default all) into float32 (rows, num_features)."""
        return self._encode(df, meta=True, rows=rows)

    def _encode(
        self, df: pd.DataFrame, meta: bool, width: int | None = None, rows: np.ndarray | None = None
    ) -> torch.Tensor:
        """Encode CHUNK_ROWS rows at a time into one float32 matrix (`width` columns, the encoded ones first)."""
        out: torch.Tensor | None = None
        total = len(df) if rows is None else len(rows)
        for start in range(0, max(total, 1), CHUNK_ROWS):  # one pass even without rows: same errors as with
            chunk = slice(start, start + CHUNK_ROWS)
            part = self._encode_rows(df.iloc[chunk if rows is None else rows[chunk]], meta)
            if out is None:
                out = torch.empty(total, width or part.shape[1])
            out[start : start + len(part), : part.shape[1]] = part
        return out

    def _encode_rows(self, df: pd.DataFrame, meta: bool) -> torch.Tensor:
        """Numeric (standardised), one-hot, missing indicators, then (if meta) full-train target encodings."""
        values = torch.from_numpy(df[self.numeric].to_numpy(np.float64))
        values = torch.where(values.isnan(), self.median, values)
        parts = [((values - self.center) / self.scale).float()]
        for col in self.categorical:
            codes = torch.from_numpy(pd.Categorical(df[col], categories=self.vocab[col]).codes.astype(np.int64))
            onehot = torch.zeros(len(df), len(self.vocab[col]) + 1)
            onehot[torch.arange(len(df)), codes] = 1.0  # code -1 (unseen/missing) lands in the last column
            parts.append(onehot[:, :-1])
        if self.indicators:
            parts.append(torch.from_numpy(df[self.indicators].isna().to_numpy(np.float32)))
        if meta and self._all_encoders():
            self._check_meta(df)
            parts += [e.transform(df[e.column]) for e in self._all_encoders()]
        return torch.cat(parts, dim=1)

    def encode_labels(self, labels: pd.Series) -> torch.Tensor:
        """Genre names to class indices; an unknown name is an error naming it."""
        codes, uniques = pd.factorize(labels)  # native on Arrow strings: no Python object per row
        codes = np.append(pd.Categorical(uniques, categories=self.classes).codes, -1)[codes]  # -1: missing
        if (codes < 0).any():
            unknown = sorted(set(labels[codes < 0].astype(str)))[:5]
            raise GenreTorchError(f"unknown genre(s) {unknown}; this model knows: {', '.join(self.classes)}")
        return torch.from_numpy(codes.astype(np.int64))

    def decode_labels(self, indices: torch.Tensor | np.ndarray) -> list[str]:
        """Class indices to genre names."""
        return [self.classes[i] for i in np.asarray(indices).tolist()]

    def state_dict(self) -> dict[str, Any]:
        """All fitted state as plain tensors, lists and dicts (safe for weights_only loading)."""
        return {
            "numeric": self.numeric,
            "scaling": self.scaling,
            "categorical": self.categorical,
            "median": self.median,
            "center": self.center,
            "scale": self.scale,
            "vocab": self.vocab,
            "classes": self.classes,
            "indicators": self.indicators,
            "meta": {c: e.state_dict() for c, e in self.encoders.items()},
            "text": {c: e.state_dict() for c, e in self.text_encoders.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> Preprocessor:
        """Restore the state written by state_dict() (or by an older version: compat.preprocessor_state)."""
        state = preprocessor_state(state)
        self.numeric, self.categorical = list(state["numeric"]), list(state["categorical"])
        self.median, self.center, self.scale = state["median"], state["center"], state["scale"]
        self.scaling = state.get("scaling", "standard")  # only the statistics differ: both are (x - center) / scale
        self.vocab, self.classes = dict(state["vocab"]), list(state["classes"])
        self.indicators = list(state.get("indicators", []))
        self.encoders = {c: TargetEncoder.from_state_dict(e) for c, e in state.get("meta", {}).items()}
        self.meta = {c: e.separator for c, e in self.encoders.items()}
        self.text_encoders = {c: TextEncoder.from_state_dict(e) for c, e in state.get("text", {}).items()}
        self.text = {c: e.options for c, e in self.text_encoders.items()}
        self.missing_indicators = bool(self.indicators)
        return self

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Build a fitted Preprocessor from saved state."""
        return cls(state["numeric"], state["categorical"]).load_state_dict(state)
