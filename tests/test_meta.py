"""Metadata features (audio+meta): target encoding from training rows only, multi-valued artists, grouped split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import genre_torch.core.data.datamodule as data_module
from genre_torch.cli import run_cli
from genre_torch.core.compat import data_state
from genre_torch.core.data import GenreDataModule
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.data.split import artist_groups
from genre_torch.core.data.target_encoding import TargetEncoder
from tests.conftest import make_music_genre, make_spotify_tracks
from tests.test_cli import fit


def test_encoder_multi_valued_unseen_and_round_trip(tmp_path) -> None:
    values = pd.Series(["A", "A;B", "B", "C", None])
    labels = np.array([0, 1, 1, 0, 1])
    enc = TargetEncoder("artists", ";", smoothing=0.0).fit(values, labels, num_classes=2)
    assert enc.keys == ["A", "B", "C"]
    out = enc.transform(pd.Series(["A", "B ; C", "nobody", None]))
    assert torch.allclose(out[0, :2], torch.tensor([0.5, 0.5]))  # A: one row of each genre
    assert torch.allclose(out[1, :2], torch.tensor([0.5, 0.5]))  # mean of B (1.0 genre 1) and C (1.0 genre 0)
    prior = torch.tensor([2 / 5, 3 / 5])  # genre counts over the 5 artist tokens of training rows
    assert torch.allclose(out[2, :2], prior) and torch.allclose(out[3, :2], prior) and out[2, 2] == 0
    torch.save(enc.state_dict(), tmp_path / "enc.pt")
    back = TargetEncoder.from_state_dict(torch.load(tmp_path / "enc.pt", weights_only=True))
    assert torch.equal(back.transform(values), enc.transform(values))


def test_train_rows_get_out_of_fold_encoding() -> None:
    df = pd.DataFrame({"x": np.arange(40.0), "artist": [f"a{i}" for i in range(40)]})
    labels = pd.Series(np.where(np.arange(40) % 2, "rock", "jazz"))
    pre = Preprocessor(["x"], [], meta={"artist": None}, folds=5)
    oof = pre.fit_transform(df, labels)
    full = pre.transform(df)
    assert oof.shape == full.shape == (40, 1 + 2 + 1)
    # every artist occurs once: out of fold it is unseen (the other folds' prior, count 0); in full-train stats known
    assert (oof[:, 1:3] - 0.5).abs().max() < 0.05 and (oof[:, 3] == 0).all()
    assert not torch.allclose(full[:, 1:3], oof[:, 1:3]) and (full[:, 3] > 0).all()


def test_validation_and_test_labels_do_not_change_the_fitted_state(data_env, monkeypatch, tmp_path) -> None:
    args = {"dataset": "spotify_tracks", "features": "audio+meta", "missing_indicators": True}
    first = GenreDataModule(**args).load()
    raw = make_spotify_tracks()
    frame = data_module.read_csv(data_env / "spotify_tracks.csv.gz")
    assert len(frame) == len(raw)
    cleaned = first.frame
    held_out = np.concatenate([first.splits["val"], first.splits["test"]])
    changed = cleaned.copy()
    rng = np.random.default_rng(0)
    changed.loc[held_out, "track_genre"] = rng.permutation(changed.loc[held_out, "track_genre"].to_numpy())
    changed.loc[held_out[:5], "track_genre"] = "acoustic"
    assert (changed["track_genre"] != cleaned["track_genre"]).any()
    path = tmp_path / "changed.csv"
    changed.to_csv(path, index=False)
    monkeypatch.setattr(data_module, "split_indices", lambda *a, **k: first.splits)  # same rows in each split
    second = GenreDataModule(**args, path=str(path)).load()
    a, b = first.preprocessor.state_dict(), second.preprocessor.state_dict()
    assert a["meta"].keys() == {"artists", "album_name"} and a["text"].keys() == {"track_name", "album_name"}
    for kind, col in [("meta", c) for c in a["meta"]] + [("text", c) for c in a["text"]]:
        assert a[kind][col]["keys"] == b[kind][col]["keys"] and a[kind][col]["keys"]
        assert torch.equal(a[kind][col]["triplets"], b[kind][col]["triplets"])
    for split in ("train", "val", "test"):
        assert torch.equal(first.tensors[split][0], second.tensors[split][0]), split


def test_artist_split_keeps_artists_apart(data_env) -> None:
    for dataset, column in (("music_genre", "artist_name"), ("spotify_tracks", "artists")):
        dm = GenreDataModule(dataset, split="artist").load()
        groups = artist_groups(dm.frame[column])
        train, test = set(groups[dm.splits["train"]]), set(groups[dm.splits["test"]])
        assert not train & test and not set(groups[dm.splits["val"]]) & test
        assert 0.1 < len(dm.splits["test"]) / len(dm.frame) < 0.35


def test_grouped_out_of_fold_encoding_never_sees_the_rows_artist() -> None:
    artists = pd.Series([f"a{i % 8}" for i in range(80)])  # 8 artists, 10 rows each, one genre per artist
    codes = np.arange(80) % 8 % 2
    enc = TargetEncoder("artist")
    plain = enc.fit_transform_oof(artists, codes, 2, folds=4, seed=0)
    grouped = enc.fit_transform_oof(artists, codes, 2, folds=4, seed=0, groups=artist_groups(artists))
    assert (plain[:, 2] > 0).all()  # plain folds: the artist's other rows are in the fitting folds
    assert (grouped[:, 2] == 0).all()  # grouped: every training row's artist is unseen, as in an artist split


def test_unknown_feature_options_are_clear_errors() -> None:
    from genre_torch.core.errors import GenreTorchError

    with pytest.raises(GenreTorchError, match="audio, audio\\+meta"):
        GenreDataModule("music_genre", features="audio+lyrics")
    with pytest.raises(GenreTorchError, match="known: artists, album_name, track_name"):
        GenreDataModule("spotify_tracks", features="audio+meta", meta_columns=["artist_name"])


def test_fit_with_meta_and_early_stopping_on_accuracy(data_env) -> None:
    extra = ["--data.features", "audio+meta", "--early_stopping.monitor", "val/acc", "--early_stopping.mode", "max"]
    cli = run_cli(fit("music_genre", *extra, "--model.backbone", "TabM", "--model.backbone.k", "4"))
    callback = cli.trainer.checkpoint_callback
    assert callback.monitor == "val/acc" and callback.mode == "max"
    ckpt = torch.load(callback.best_model_path, weights_only=True)
    pre = Preprocessor.from_state_dict(data_state(ckpt)["preprocessor"])
    raw = make_music_genre().dropna(how="all").head(20)
    from genre_torch.core.data.datasets import MUSIC_GENRE

    x = pre.transform(MUSIC_GENRE.clean(raw, training=False))
    assert x.shape == (20, cli.datamodule.num_features) and "artist_name#log_count" in pre.feature_names
    assert pre.feature_names[-1] == "track_name@title#log_count"  # titles: the last block
