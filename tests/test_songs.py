"""Songs: one song listed under several genres, the song-grouped split, and the twin audit of the issue's numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from genre_torch.core.data import GenreDataModule, read_csv
from genre_torch.core.data.datasets import MUSIC_GENRE, SPOTIFY_TRACKS, DataWarning
from genre_torch.core.data.songs import audio_keys, has_twin, song_groups
from genre_torch.core.data.split import split_indices
from tests.conftest import real_file


def test_song_groups_join_identical_features_and_ids_transitively() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, 1.0, 2.0, 3.0, np.nan, np.nan, 5.0],
            "k": ["a", "a", "a", "b", None, None, "c"],
            "id": ["s1", "s2", "s2", "s3", "s4", None, None],
        }
    )
    assert audio_keys(frame, ["x", "k"]).tolist() == [0, 0, 1, 2, 3, 3, 4]  # missing values compare equal
    songs = song_groups(frame, ["x", "k"], "id")
    # rows 0-1 share features, rows 1-2 share an id: one song; 4-5 share features (all missing)
    assert songs[0] == songs[1] == songs[2] and len({songs[0], songs[3], songs[4], songs[6]}) == 4
    assert songs[4] == songs[5]
    assert len(set(song_groups(frame, ["x", "k"]))) == 5  # without ids rows 0-1 and 4-5 only
    assert has_twin(songs, np.array([2, 3, 5]), np.array([0, 4])).tolist() == [True, False, True]


def test_song_split_keeps_songs_apart_and_genres_balanced(data_env) -> None:
    for dataset in ("music_genre", "spotify_tracks"):
        dm = GenreDataModule(dataset, split="song").load()
        songs = dm.songs
        train, val, test = (set(songs[dm.splits[s]]) for s in ("train", "val", "test"))
        assert not train & test and not train & val and not val & test
        assert not has_twin(songs, dm.splits["test"], dm.splits["train"]).any()
        assert sum(len(v) for v in dm.splits.values()) == len(dm.frame)
        labels = dm.frame[dm.spec.target]
        share = labels.iloc[dm.splits["test"]].value_counts(normalize=True)
        assert (share - labels.value_counts(normalize=True)).abs().max() < 0.05
        assert 0.15 < len(dm.splits["test"]) / len(dm.frame) < 0.25
    spotify = GenreDataModule("spotify_tracks", split="song").load()
    same_id = spotify.frame["track_id"] == spotify.frame["track_id"].iloc[0]  # one track under two genres
    assert same_id.sum() == 2 and len(set(spotify.songs[same_id.to_numpy()])) == 1


@pytest.mark.real_data
def test_twin_rates_of_the_canonical_split_match_the_issue() -> None:
    for spec, expected in ((MUSIC_GENRE, 485), (SPOTIFY_TRACKS, 7044)):  # 4.85 % and 31.02 % of the test rows
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # music_genre's "?" tempos and -1 durations
            frame = spec.clean(read_csv(real_file(spec.name)))
        splits = split_indices(frame[spec.target])
        twins = has_twin(audio_keys(frame, spec.features), splits["test"], splits["train"])
        assert int(twins.sum()) == expected, spec.name
