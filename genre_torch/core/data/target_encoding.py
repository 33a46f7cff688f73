"""Target encoding of metadata columns (artist, album): smoothed per-genre frequency vectors from training rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch


def tokens(values: pd.Series, separator: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(row position, token) pairs of a text column; `A;B` gives two tokens when separator is ';'."""
    text = values.reset_index(drop=True).astype("string").str.strip()
    if separator:
        text = text.str.split(separator).explode().str.strip()
    text = text[text.notna() & (text != "")]
    return np.array(text.index, dtype=np.int64), text.to_numpy(dtype=object)


class TargetEncoder:
    """Encodes one text column as (count_k + m * prior) / (n_k + m) per genre, plus log(1 + n_k).

    A row with several tokens (multi-valued artists) gets the mean over its tokens; an unseen or
    missing token gets the prior with n = 0. State: the token list and sparse (token, genre, count)
    triplets, all plain lists and tensors.
    """

    def __init__(self, column: str, separator: str | None = None, smoothing: float = 1.0) -> None:
        self.column, self.separator, self.smoothing = column, separator, smoothing
        self.keys: list[str] = []
        self.num_classes = 0
        self.triplets = torch.zeros(3, 0, dtype=torch.long)  # rows: token index, genre index, count
        self._dense: torch.Tensor | None = None

    @property
    def feature_names(self) -> list[str]:
        """Names of the encoded columns: one per genre, then the log count."""
        return [f"{self.column}~{c}" for c in range(self.num_classes)] + [f"{self.column}#log_count"]

    def fit(self, values: pd.Series, labels: np.ndarray, num_classes: int) -> TargetEncoder:
        """Count genres per token over training rows (labels are class indices)."""
        rows, toks = tokens(values, self.separator)
        codes, keys = pd.factorize(toks, sort=True)
        pair = codes.astype(np.int64) * num_classes + np.asarray(labels, dtype=np.int64)[rows]
        uniq, counts = np.unique(pair, return_counts=True)
        self.keys, self.num_classes = [str(k) for k in keys], num_classes
        self.triplets = torch.from_numpy(np.stack([uniq // num_classes, uniq % num_classes, counts]))
        self._dense = None
        return self

    def counts(self) -> torch.Tensor:
        """Dense (tokens + 1, genres) count matrix; the last row sums all tokens (gives the prior)."""
        if self._dense is None:
            dense = torch.zeros(len(self.keys) + 1, self.num_classes, dtype=torch.float64)
            dense.index_put_((self.triplets[0], self.triplets[1]), self.triplets[2].double(), accumulate=True)
            dense[-1] = dense[:-1].sum(0)
            self._dense = dense
        return self._dense

    def transform(self, values: pd.Series) -> torch.Tensor:
        """Encode rows with the fitted statistics: float32 of shape (rows, genres + 1)."""
        counts = self.counts()
        total = counts[-1]
        prior = total / total.sum().clamp(min=1)
        per_token = counts[:-1]
        n = per_token.sum(1, keepdim=True)
        encoded = torch.cat([(per_token + self.smoothing * prior) / (n + self.smoothing), n.log1p()], 1)
        unseen = torch.cat([prior, torch.zeros(1, dtype=torch.float64)])
        rows, toks = tokens(values, self.separator)
        index = torch.from_numpy(pd.Index(self.keys).get_indexer(toks).astype(np.int64))
        table = torch.cat([encoded, unseen[None]])  # index -1 (unseen) picks the last row
        out = torch.zeros(len(values), self.num_classes + 1, dtype=torch.float64)
        out.index_add_(0, torch.from_numpy(rows), table[index])
        seen = torch.bincount(torch.from_numpy(rows), minlength=len(values)).double()[:, None]
        out = torch.where(seen > 0, out / seen.clamp(min=1), unseen)
        return out.float()

    def fit_transform_oof(
        self,
        values: pd.Series,
        labels: np.ndarray,
        num_classes: int,
        folds: int = 5,
        seed: int = 0,
        groups: np.ndarray | None = None,
    ) -> torch.Tensor:
        """Out-of-fold encoding of training rows (each fold encoded by the others), then fit on all rows.

        With groups (the song of each row, or its artist for an artist-grouped split) no group spans two folds:
        no row is encoded with the labels of its own song (listed under another genre), which a model would
        otherwise learn to read as "seen under genre A, so not A"; in an artist split, training rows are encoded
        as test rows will be, by statistics that never saw their artist.
        """
        from sklearn.model_selection import GroupKFold, KFold  # fitting only: scoring skips sklearn's import

        values = values.reset_index(drop=True)
        out = torch.zeros(len(values), num_classes + 1)
        if groups is not None and len(np.unique(groups)) < folds:
            groups = None  # too few groups to fold by (tiny data): plain folds
        if folds >= 2 and len(values) >= folds:
            splitter = (
                KFold(folds, shuffle=True, random_state=seed)
                if groups is None
                else GroupKFold(folds, shuffle=True, random_state=seed)
            )
            for fit_idx, enc_idx in splitter.split(values, groups=groups):
                part = TargetEncoder(self.column, self.separator, self.smoothing)
                part.fit(values.iloc[fit_idx], np.asarray(labels)[fit_idx], num_classes)
                out[enc_idx] = part.transform(values.iloc[enc_idx])
        self.fit(values, labels, num_classes)
        return out if folds >= 2 and len(values) >= folds else self.transform(values)

    def state_dict(self) -> dict[str, Any]:
        """Fitted state as plain lists and tensors."""
        return {
            "column": self.column,
            "separator": self.separator,
            "smoothing": self.smoothing,
            "keys": self.keys,
            "num_classes": self.num_classes,
            "triplets": self.triplets,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TargetEncoder:
        """Rebuild a fitted encoder from state_dict()."""
        enc = cls(state["column"], state["separator"], state["smoothing"])
        enc.keys, enc.num_classes, enc.triplets = list(state["keys"]), int(state["num_classes"]), state["triplets"]
        return enc
