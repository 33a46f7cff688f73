"""Robust scaling (--data.scaling robust): training-only statistics, fallbacks, checkpoint state, export parity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genre_torch.core.compat import preprocessor_state
from genre_torch.core.data import GenreDataModule
from genre_torch.core.data.datasets import MUSIC_GENRE
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.errors import GenreTorchError
from genre_torch.tools.export import ExportedModel
from tests.conftest import make_music_genre


def frame(columns: dict[str, list[float]]) -> pd.DataFrame:
    """Numeric columns and a two-genre label column."""
    n = len(next(iter(columns.values())))
    return pd.DataFrame({**columns, "genre": ["a", "b"] * (n // 2)})


def test_robust_scaling_uses_median_and_interquartile_range() -> None:
    values = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1000.0]  # an outlier moves mean/std, not these
    rare = [0.0] * 8 + [4.0, 8.0]  # equal quartiles: half the min-max range
    flat = [3.0] * 10
    df = frame({"v": values, "rare": rare, "flat": flat})
    pre = Preprocessor(["v", "rare", "flat"], [], scaling="robust").fit(df, df["genre"])
    q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    assert pre.center.tolist() == [q50, 0.0, 3.0]
    assert pre.scale.tolist() == [q75 - q25, 4.0, 1.0]
    x = pre.transform(df)
    assert torch.allclose(x[:, 0].double(), (torch.tensor(values, dtype=torch.float64) - q50) / (q75 - q25))
    assert x[:, 2].eq(0).all() and x[-1, 1] == 2.0
    standard = Preprocessor(["v", "rare", "flat"], []).fit(df, df["genre"])
    assert standard.transform(df)[:, 0].abs().max() < x[:, 0].abs().max()  # the outlier is not squashed by std


def test_robust_state_comes_from_training_rows_and_round_trips() -> None:
    df = MUSIC_GENRE.clean(make_music_genre(n=200))
    rows = np.arange(100)
    pre = Preprocessor(MUSIC_GENRE.numeric, MUSIC_GENRE.categorical, scaling="robust")
    pre.fit(df, df["music_genre"].iloc[rows], rows=rows)
    changed = df.copy()
    changed.loc[changed.index[100:], "loudness"] = 1e6  # held-out rows change
    other = Preprocessor(MUSIC_GENRE.numeric, MUSIC_GENRE.categorical, scaling="robust")
    other.fit(changed, changed["music_genre"].iloc[rows], rows=rows)
    assert torch.equal(pre.center, other.center) and torch.equal(pre.scale, other.scale)
    restored = Preprocessor.from_state_dict(pre.state_dict())
    assert restored.scaling == "robust" and torch.equal(restored.transform(df), pre.transform(df))
    old = {k: v for k, v in Preprocessor(MUSIC_GENRE.numeric, []).fit(df, df["music_genre"]).state_dict().items()}
    del old["scaling"]  # a checkpoint from before the option: standard scaling
    assert Preprocessor.from_state_dict(old).scaling == "standard"


def test_a_state_with_the_old_mean_and_std_keys_loads() -> None:
    """Before they were named center / scale, the (x - center) / scale statistics were saved as mean / std."""
    df = MUSIC_GENRE.clean(make_music_genre(n=200))
    pre = Preprocessor(MUSIC_GENRE.numeric, MUSIC_GENRE.categorical, scaling="robust").fit(df, df["music_genre"])
    new = pre.state_dict()
    old = {{"center": "mean", "scale": "std"}.get(k, k): v for k, v in new.items()}
    assert {"mean", "std"} <= set(old) and not {"center", "scale"} & set(old)
    mapped = preprocessor_state(old)
    assert list(mapped) == list(new) and all(mapped[k] is new[k] for k in new)  # the same values, renamed
    assert preprocessor_state(new) is new  # a current state is left as it is
    restored = Preprocessor.from_state_dict(old)
    assert torch.equal(restored.center, pre.center) and torch.equal(restored.scale, pre.scale)
    assert torch.equal(restored.transform(df), pre.transform(df))
    numeric = Preprocessor(MUSIC_GENRE.numeric, []).fit(df, df["music_genre"]).state_dict()
    raw = torch.from_numpy(df[list(MUSIC_GENRE.numeric)].to_numpy(np.float32))
    renamed = {{"center": "mean", "scale": "std"}.get(k, k): v for k, v in numeric.items()}
    exported = [ExportedModel(torch.nn.Identity(), state)(raw) for state in (renamed, numeric)]
    assert torch.equal(*exported)


def test_export_matches_robust_encoding() -> None:
    df = MUSIC_GENRE.clean(make_music_genre(n=200))
    pre = Preprocessor(MUSIC_GENRE.numeric, [], scaling="robust").fit(df, df["music_genre"])
    exported = ExportedModel(torch.nn.Identity(), pre.state_dict())
    raw = torch.from_numpy(df[list(MUSIC_GENRE.numeric)].to_numpy(np.float32))
    assert torch.allclose(exported(raw), pre.transform(df).softmax(-1), atol=1e-6)


def test_unknown_scaling_is_refused(data_dir) -> None:
    with pytest.raises(GenreTorchError, match="unknown scaling 'minmax'; known: standard, robust"):
        Preprocessor(["x"], [], scaling="minmax")
    dm = GenreDataModule(path=str(data_dir / "music_genre.csv"), scaling="robust").load()
    x = dm.tensors["train"][0][:, : len(MUSIC_GENRE.numeric)]
    assert x.quantile(0.5, dim=0).abs().max() < 1e-6  # centred on the training median
