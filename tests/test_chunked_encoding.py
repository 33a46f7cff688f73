"""Chunked encoding (bounded memory on large splits) gives exactly the matrix of one-shot encoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genre_torch.core.data import preprocessing
from genre_torch.core.data.datasets import get_spec
from genre_torch.core.data.preprocessing import Preprocessor
from tests.conftest import make_spotify_tracks


@pytest.mark.parametrize("meta", [{}, {"artists": ";", "album_name": None}])
def test_chunks_and_row_positions_match_one_shot(meta: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """fit_transform/transform with rows= and 37-row chunks equal the unchunked encoding of copied rows."""
    spec = get_spec("spotify_tracks")
    frame = spec.clean(make_spotify_tracks(600, seed=3))
    frame.loc[::7, "tempo"] = np.nan  # missing values: median fill and indicators
    train, test = np.arange(0, 600, 2), np.arange(1, 600, 3)

    def encode(**kw: object) -> tuple[torch.Tensor, torch.Tensor, Preprocessor]:
        pre = Preprocessor(spec.numeric, spec.categorical, meta, missing_indicators=True)
        if kw:
            x = pre.fit_transform(frame, frame[spec.target].iloc[train], seed=1, rows=train)
            return x, pre.transform(frame, rows=test), pre
        rows = frame.iloc[train]
        return pre.fit_transform(rows, rows[spec.target], seed=1), pre.transform(frame.iloc[test]), pre

    whole_train, whole_test, whole = encode()
    monkeypatch.setattr(preprocessing, "CHUNK_ROWS", 37)
    chunk_train, chunk_test, chunked = encode(rows=True)
    assert whole.indicators == ["tempo"] and chunk_train.shape == (300, whole.num_features)
    assert torch.equal(chunk_train, whole_train) and torch.equal(chunk_test, whole_test)
    assert torch.equal(chunked.center, whole.center) and torch.equal(chunked.scale, whole.scale)
