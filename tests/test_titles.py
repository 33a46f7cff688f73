"""Titles as features: n-gram tokens, the min-songs rule, state round trip, no exact-match lookup, predict on titles."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import genre_torch.core.data.datamodule as data_module
from genre_torch.cli import main
from genre_torch.core.data import GenreDataModule
from genre_torch.core.data.datasets import DatasetSpec
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.data.songs import has_twin, song_groups
from genre_torch.core.data.text_encoding import Analyzer, TextEncoder
from genre_torch.core.errors import GenreTorchError
from tests.conftest import make_music_genre
from tests.test_cli import fit


def test_analyzer_words_bigrams_and_characters_within_words() -> None:
    assert Analyzer(2, 0)("Love, Me (Live)") == ["love", "me", "live", "love me", "me live"]
    assert Analyzer(1, 4)("Ｏk go") == ["ok", "go", "# ok ", "# go "]  # NFKC: full-width letters are letters
    assert Analyzer(1, 3)("abcd")[1:] == ["# ab", "#abc", "#bcd", "#cd "]


def test_tokens_of_a_single_song_are_dropped() -> None:
    titles = pd.Series(["Blue Moon", "Blue Moon", "Blue Sky", None])
    labels = np.array([0, 1, 1, 0])
    enc = TextEncoder("title", words=2, chars=0, min_songs=2).fit(titles, labels, 2, songs=np.array([0, 0, 1, 2]))
    assert enc.keys == ["blue"]  # "moon" and "blue moon" are one song listed twice, "sky" one song
    one_song_each = TextEncoder("title", words=2, chars=0, min_songs=2).fit(titles, labels, 2)
    assert one_song_each.keys == ["blue", "blue moon", "moon"]  # without song ids every row is a song
    out = enc.transform(pd.Series(["blue", "moon", ""]))
    counts = torch.tensor([1.0, 2.0])  # "blue": rows of genres 0, 1, 1
    prior = counts / 3
    assert torch.allclose(out[0, :2], (counts + prior) / 4) and torch.allclose(out[0, 2], torch.tensor(3.0).log1p())
    assert torch.allclose(out[1, :2], prior) and torch.allclose(out[2, :2], prior) and out[1, 2] == 0


def test_state_round_trip_through_a_weights_only_load(tmp_path) -> None:
    df = pd.DataFrame({"x": np.arange(60.0), "title": [f"song {i % 7} live" for i in range(60)]})
    labels = pd.Series(np.where(np.arange(60) % 3, "rock", "jazz"))
    pre = Preprocessor(["x"], [], text={"title": {"words": 2, "chars": 3, "min_songs": 2}}, folds=4)
    oof = pre.fit_transform(df, labels)
    assert oof.shape == (60, 1 + 2 + 1) and pre.feature_names[-1] == "title@title#log_count"
    torch.save(pre.state_dict(), tmp_path / "pre.pt")
    back = Preprocessor.from_state_dict(torch.load(tmp_path / "pre.pt", weights_only=True))
    assert torch.equal(back.transform(df), pre.transform(df)) and back.text == pre.text


def test_spec_text_options_are_checked() -> None:
    base = {"name": "x", "target": "y", "numeric": ["a"], "id_columns": ["t"]}
    spec = DatasetSpec.from_dict({**base, "text": {"t": None}, "song_id": "t"})
    assert spec.text == {"t": {"words": 2, "chars": 4, "min_songs": 2}} and spec.to_dict()["song_id"] == "t"
    for text, message in (({"t": {"ngrams": 2}}, "keys words, chars, min_songs"), ({"t": {"words": -1}}, ">= 0")):
        with pytest.raises(GenreTorchError, match=message):
            DatasetSpec.from_dict({**base, "text": text})
    with pytest.raises(GenreTorchError, match="song_id 'u' must be one of the id_columns"):
        DatasetSpec.from_dict({**base, "song_id": "u"})


def adversarial_songs(n: int = 400) -> pd.DataFrame:
    """Every song twice with identical audio, once per genre; labels independent of audio; titles, artists unique."""
    base = make_music_genre(n, n_genres=2).dropna(how="all").reset_index(drop=True)
    rng = np.random.default_rng(1)
    base["music_genre"] = np.where(rng.random(len(base)) < 0.5, "Electronic", "Anime")
    base["track_name"] = [f"song {i} title" for i in range(len(base))]
    base["artist_name"] = [f"artist {i}" for i in range(len(base))]
    twin = base.assign(music_genre=np.where(base["music_genre"] == "Anime", "Electronic", "Anime"))
    return pd.concat([base, twin.assign(instance_id=base["instance_id"] + 1e6)], ignore_index=True)


def twin_accuracy(path: str, features: str) -> float:
    """Logistic regression on the encoded training rows, scored on the test rows whose twin is in training."""
    dm = GenreDataModule("music_genre", path=path, features=features).load()
    (xt, yt), (xs, ys) = dm.tensors["train"], dm.tensors["test"]
    songs = song_groups(dm.frame, dm.spec.features)  # the real songs, also where the test patches the data module's
    twins = has_twin(songs, dm.splits["test"], dm.splits["train"])
    assert twins.sum() > 100
    model = LogisticRegression(max_iter=2000).fit(xt.numpy(), yt.numpy())
    return float((model.predict(xs.numpy()) == ys.numpy())[twins].mean())


def test_no_exact_match_lookup_of_a_songs_training_genre(tmp_path, monkeypatch) -> None:
    path = tmp_path / "music_genre.csv"
    adversarial_songs().to_csv(path, index=False)
    audio = twin_accuracy(str(path), "audio")
    titles_and_artists = twin_accuracy(str(path), "audio+meta")
    assert audio < 0.65 and titles_and_artists < audio + 0.1  # "seen under A, so not A" would score ~100 %
    # the same features without the guards (every row its own song): the lookup is learnt, so the test can fail
    monkeypatch.setattr(data_module, "song_groups", lambda frame, *a: np.arange(len(frame)))
    monkeypatch.setattr(data_module, "LOADED", {})  # encode again, with the patched song groups
    assert twin_accuracy(str(path), "audio+meta") > 0.9


def test_fit_and_predict_raw_rows_with_titles(data_env, capsys, tmp_path) -> None:
    main(fit("spotify_tracks", "--data.features", "audio+meta", "--data.meta_columns", "[track_name]"))
    out = capsys.readouterr().out
    best = re.search(r"best checkpoint: (\S+)", out).group(1)
    acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    dm = GenreDataModule("spotify_tracks", features="audio+meta", meta_columns=["track_name"]).load()
    assert list(dm.preprocessor.text_encoders) == ["track_name"] and not dm.preprocessor.encoders
    rows = dm.frame.iloc[dm.splits["test"]]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    main(["predict", "--ckpt_path", best, "--input", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "p.csv")])
    assert float(re.search(r"^accuracy: ([0-9.]+)", capsys.readouterr().out, re.M).group(1)) == pytest.approx(acc)
    main(["importance", "--ckpt_path", best, "--repeats", "1"])  # the title column is permuted like the others
    assert (
        "track_name"
        in pd.read_csv(next(Path("runs").glob("spotify_tracks/version_*/importance/importance.csv")))["column"].values
    )
