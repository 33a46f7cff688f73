"""Artist-grouped split: no artist appears in two of train / validation / test (unseen-artist evaluation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from genre_torch.errors import GenreTorchError


def artist_groups(artists: pd.Series, separator: str | None = ";") -> np.ndarray:
    """Group id per row: its first listed artist (`A;B` -> A); rows without an artist are one group each.

    Grouping by the whole collaboration graph is not usable: on spotify_tracks it joins 46 % of the
    rows into one component, so featured artists (the `B` in `A;B`) may still cross splits.
    """
    first = artists.reset_index(drop=True).astype("string").str.split(separator).str[0].str.strip()
    codes, _ = pd.factorize(first.replace("", pd.NA))
    return np.where(codes >= 0, codes, len(first) + np.arange(len(first)))


def group_split_indices(
    labels: np.ndarray, groups: np.ndarray, test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 42
) -> dict[str, np.ndarray]:
    """Stratified-as-possible split by group id (artist_groups): test ~test_fraction, val ~val_fraction of the rest."""
    if len(np.unique(groups)) < 3:
        raise GenreTorchError("an artist-grouped split needs at least 3 distinct artist groups")
    idx = np.arange(len(labels))

    def one_fold(subset: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        splitter = StratifiedGroupKFold(max(2, round(1 / fraction)), shuffle=True, random_state=seed)
        keep, held = next(splitter.split(subset, labels[subset], groups[subset]))
        return subset[keep], subset[held]

    rest, test = one_fold(idx, test_fraction)
    train, val = one_fold(rest, val_fraction)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
