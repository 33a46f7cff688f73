"""Songs: which rows are the same song (one listed under several genres), and which test rows have a twin in training.

Both datasets list a song once per genre it is filed under. A row whose song also sits in the training split
(under another genre, almost always) can be "predicted" by looking its song up, which is not learning about
music; the song-grouped split keeps a song's rows together and the benchmark scores twin rows apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def audio_keys(frame: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> np.ndarray:
    """Id per row of its exact cleaned feature vector (missing values compare equal); equal ids, equal vectors."""
    return frame.groupby(list(columns), dropna=False, sort=False, observed=True).ngroup().to_numpy(np.int64)


def song_groups(frame: pd.DataFrame, columns: list[str] | tuple[str, ...], song_id: str | None = None) -> np.ndarray:
    """Song id per row: rows are one song when their feature vectors are identical or (song_id) their ids equal.

    The two relations are joined transitively (connected components), so a song never straddles a split
    through either of them. A missing id joins nothing.
    """
    keys = [audio_keys(frame, columns)]
    if song_id is not None:
        ids, _ = pd.factorize(frame[song_id].reset_index(drop=True))
        keys.append(np.where(ids >= 0, ids, -1))
    n, offset, rows, cols = len(frame), len(frame), [], []
    for key in keys:
        present = key >= 0
        rows.append(np.flatnonzero(present))
        cols.append(offset + key[present])
        offset += int(key.max(initial=-1)) + 1
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(offset, offset))
    _, labels = connected_components(graph, directed=False)
    codes, _ = pd.factorize(labels[:n])
    return codes.astype(np.int64)


def has_twin(groups: np.ndarray, rows: np.ndarray, train: np.ndarray) -> np.ndarray:
    """For each of `rows`: whether a training row (positions `train`) is the same song (groups: song_groups)."""
    return np.isin(groups[rows], groups[train])
