"""Preprocessor: imputation, one-hot encoding, standardisation and label encoding, fitted on training rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from genre_torch.errors import GenreTorchError


class Preprocessor:
    """Turns clean feature columns into a float32 matrix and genre names into class indices.

    Numeric columns: missing values get the training median, then (x - mean) / std with training
    mean and std. Categorical columns: one-hot over the categories seen in training rows; an unseen
    or missing category is the all-zero vector. All fitted state is plain tensors and lists.
    """

    def __init__(self, numeric: list[str] | tuple[str, ...], categorical: list[str] | tuple[str, ...]) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.median = self.mean = self.std = torch.empty(0)
        self.vocab: dict[str, list[str]] = {}
        self.classes: list[str] = []

    @property
    def fitted(self) -> bool:
        """Whether fit() or load_state_dict() has run."""
        return bool(self.classes)

    @property
    def num_features(self) -> int:
        """Width of the encoded feature matrix."""
        return len(self.numeric) + sum(len(v) for v in self.vocab.values())

    @property
    def feature_names(self) -> list[str]:
        """Name of every encoded column, in matrix order."""
        return self.numeric + [f"{c}={v}" for c in self.categorical for v in self.vocab[c]]

    def fit(self, df: pd.DataFrame, labels: pd.Series) -> Preprocessor:
        """Fit all state on training rows only."""
        values = df[self.numeric].to_numpy(np.float64)
        median = np.nanmedian(values, axis=0) if len(values) else np.zeros(len(self.numeric))
        median = np.where(np.isnan(median), 0.0, median)  # a column that is all missing in training
        filled = np.where(np.isnan(values), median, values)
        std = filled.std(axis=0)
        self.median = torch.tensor(median, dtype=torch.float64)
        self.mean = torch.tensor(filled.mean(axis=0), dtype=torch.float64)
        self.std = torch.tensor(np.where(std > 0, std, 1.0), dtype=torch.float64)
        self.vocab = {c: sorted(df[c].dropna().unique().tolist()) for c in self.categorical}
        self.classes = sorted(labels.unique().tolist())
        return self

    def transform(self, df: pd.DataFrame) -> torch.Tensor:
        """Encode clean feature columns into a float32 matrix of shape (rows, num_features)."""
        values = torch.from_numpy(df[self.numeric].to_numpy(np.float64))
        values = torch.where(values.isnan(), self.median, values)
        parts = [((values - self.mean) / self.std).float()]
        for col in self.categorical:
            codes = torch.from_numpy(pd.Categorical(df[col], categories=self.vocab[col]).codes.astype(np.int64))
            onehot = torch.zeros(len(df), len(self.vocab[col]) + 1)
            onehot[torch.arange(len(df)), codes] = 1.0  # code -1 (unseen/missing) lands in the last column
            parts.append(onehot[:, :-1])
        return torch.cat(parts, dim=1)

    def encode_labels(self, labels: pd.Series) -> torch.Tensor:
        """Genre names to class indices; an unknown name is an error naming it."""
        codes = pd.Categorical(labels, categories=self.classes).codes
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
            "categorical": self.categorical,
            "median": self.median,
            "mean": self.mean,
            "std": self.std,
            "vocab": self.vocab,
            "classes": self.classes,
        }

    def load_state_dict(self, state: dict[str, Any]) -> Preprocessor:
        """Restore the state written by state_dict()."""
        self.numeric, self.categorical = list(state["numeric"]), list(state["categorical"])
        self.median, self.mean, self.std = state["median"], state["mean"], state["std"]
        self.vocab, self.classes = dict(state["vocab"]), list(state["classes"])
        return self

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Build a fitted Preprocessor from saved state."""
        return cls(state["numeric"], state["categorical"]).load_state_dict(state)
