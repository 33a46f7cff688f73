"""Cleaning, file lookup, preprocessing, the canonical split and batching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genre_torch.core.data import BatchGroups, GenreDataModule, TensorBatches, find_data_file, read_csv
from genre_torch.core.data.datasets import MUSIC_GENRE, SPOTIFY_TRACKS, get_spec
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.data.split import split_indices
from genre_torch.core.errors import GenreTorchError
from tests.conftest import make_music_genre, make_spotify_tracks


def test_music_genre_quirks_are_cleaned() -> None:
    raw = make_music_genre(n=100)
    with pytest.warns(UserWarning, match=r"column tempo: 10 value\(s\) unparseable -> missing"):
        df = MUSIC_GENRE.clean(raw)
    assert len(df) == 100  # the 5 all-empty rows are gone
    assert df["tempo"].isna().sum() == 10
    assert df["duration_ms"].isna().sum() == 10 and (df["duration_ms"].dropna() > 0).all()
    assert set(df["mode"]) == {"Major", "Minor"} and "A#" in set(df["key"])


def test_spotify_duplicates_dropped_but_cross_genre_repeats_kept() -> None:
    raw = make_spotify_tracks(n=200)
    df = SPOTIFY_TRACKS.clean(raw)
    assert len(df) == 200
    assert df["track_id"].duplicated().sum() == 1  # same track under two genres stays
    assert set(df["explicit"]) == {"True", "False"} and set(df["time_signature"]) <= {"3", "4", "5"}


def test_categories_are_canonical_strings() -> None:
    df = MUSIC_GENRE.clean(make_music_genre(n=40)).head(3)
    raw = pd.DataFrame({"key": [1.0, "1", " 2 "], "mode": [0, np.nan, "Major"]})
    from genre_torch.core.data.datasets import to_category

    assert to_category(raw["key"]).tolist() == ["1", "1", "2"]
    assert to_category(raw["mode"]).tolist()[::2] == ["0", "Major"]
    assert len(df) == 3


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(GenreTorchError, match="music_genre, spotify_tracks"):
        get_spec("nope")


def test_file_lookup_order(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENRE_TORCH_DATA_DIR", raising=False)
    with pytest.raises(GenreTorchError, match="GENRE_TORCH_DATA_DIR"):
        find_data_file(SPOTIFY_TRACKS)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.csv").write_text("x\n")  # the upstream name of spotify_tracks
    assert find_data_file(SPOTIFY_TRACKS).name == "dataset.csv"
    env = tmp_path / "env"
    env.mkdir()
    (env / "spotify_tracks.csv.gz").write_bytes(b"")
    monkeypatch.setenv("GENRE_TORCH_DATA_DIR", str(env))
    assert find_data_file(SPOTIFY_TRACKS) == env / "spotify_tracks.csv.gz"
    assert find_data_file(SPOTIFY_TRACKS, tmp_path / "data" / "dataset.csv").name == "dataset.csv"


def test_read_csv_rejects_binary(tmp_path) -> None:
    path = tmp_path / "x.csv.gz"
    path.write_bytes(b"\x00\x01not gzip at all")
    with pytest.raises(GenreTorchError, match="not a readable CSV"):
        read_csv(path)


def test_split_is_canonical_deterministic_and_stratified() -> None:
    labels = np.repeat(np.array(["a", "b", "c", "d"]), 250)
    s1, s2 = split_indices(labels), split_indices(labels)
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)
    assert len(s1["test"]) == 200 and len(s1["val"]) == 80 and len(s1["train"]) == 720
    assert len(np.concatenate(list(s1.values()))) == len(set(np.concatenate(list(s1.values())))) == 1000
    assert (pd.Series(labels[s1["test"]]).value_counts() == 50).all()


def test_split_errors() -> None:
    with pytest.raises(GenreTorchError, match="at least 2"):
        split_indices(np.array(["a"] * 10))
    with pytest.raises(GenreTorchError, match="class 'b' has only 1 row"):
        split_indices(np.array(["a"] * 20 + ["b"]))


def test_preprocessor_uses_training_rows_only() -> None:
    df = MUSIC_GENRE.clean(make_music_genre(n=200))
    train, other = df.iloc[:100], df.iloc[100:].copy()
    pre = Preprocessor(MUSIC_GENRE.numeric, MUSIC_GENRE.categorical).fit(train, train["music_genre"])
    x = pre.transform(train)
    assert x.shape == (100, pre.num_features) == (100, len(pre.feature_names))
    assert not x.isnan().any()
    assert torch.allclose(x[:, : len(MUSIC_GENRE.numeric)].mean(0), torch.zeros(len(MUSIC_GENRE.numeric)), atol=1e-5)
    other["key"] = "never-seen"
    assert (pre.transform(other)[:, len(MUSIC_GENRE.numeric) : len(MUSIC_GENRE.numeric) + 12] == 0).all()


def test_datamodule_state_ignores_val_and_test_rows(data_dir, tmp_path) -> None:
    raw = pd.read_csv(data_dir / "music_genre.csv")
    dm = GenreDataModule(path=str(data_dir / "music_genre.csv")).load()
    held_out = np.concatenate([dm.splits["val"], dm.splits["test"]])
    changed = MUSIC_GENRE.clean(raw)
    changed.loc[held_out, "loudness"] = 1e6  # features of held-out rows change, labels stay
    changed.loc[held_out, "key"] = "Z"
    changed.to_csv(tmp_path / "changed.csv", index=False)
    dm2 = GenreDataModule(path=str(tmp_path / "changed.csv")).load()
    assert all(np.array_equal(dm.splits[k], dm2.splits[k]) for k in dm.splits)
    a, b = dm.preprocessor.state_dict(), dm2.preprocessor.state_dict()
    assert a["vocab"] == b["vocab"] and a["classes"] == b["classes"]
    for key in ("median", "center", "scale"):
        assert torch.equal(a[key], b[key])


def test_label_round_trip() -> None:
    df = MUSIC_GENRE.clean(make_music_genre(n=80))
    pre = Preprocessor(MUSIC_GENRE.numeric, MUSIC_GENRE.categorical).fit(df, df["music_genre"])
    codes = pre.encode_labels(df["music_genre"])
    assert pre.decode_labels(codes) == df["music_genre"].tolist()
    with pytest.raises(GenreTorchError, match="unknown genre"):
        pre.encode_labels(pd.Series(["Polka"]))
    restored = Preprocessor.from_state_dict(pre.state_dict())
    assert torch.equal(restored.transform(df), pre.transform(df))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_batches_cover_every_row_once_per_epoch(world: int) -> None:
    x, y = torch.arange(103).float().unsqueeze(1), torch.arange(103)
    shards = [TensorBatches(x, y, 10, shuffle=True, seed=5, rank=r, world_size=world) for r in range(world)]
    lengths = {len(list(s)) for s in shards}
    assert lengths == {len(shards[0])}  # every rank yields the same number of batches
    seen = torch.cat([b[1] for s in shards for b in s])
    assert sorted(seen.tolist()) == list(range(103))
    single = TensorBatches(x, y, 10, shuffle=True, seed=5)
    epoch0 = torch.cat([b[1] for b in single])
    single.set_epoch(1)
    epoch1 = torch.cat([b[1] for b in single])
    single.set_epoch(0)
    assert not torch.equal(epoch0, y) and not torch.equal(epoch0, epoch1)
    assert torch.equal(torch.cat([b[1] for b in single]), epoch0)


def test_batch_groups_keep_the_batches_and_their_order() -> None:
    x, y = torch.arange(103).float().unsqueeze(1), torch.arange(103)
    batches = TensorBatches(x, y, 10, shuffle=True, seed=5)
    groups = BatchGroups(batches, 4)
    assert len(groups) == 3 and groups.optimizer_steps == 11
    groups.sampler.set_epoch(2)  # what Lightning calls: it must reach the batches
    flat = [b for g in groups for b in g]
    assert [len(g) for g in groups] == [4, 4, 3]
    batches.set_epoch(2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(flat, batches, strict=True))


def test_a_process_reads_and_encodes_the_same_data_once(data_env, monkeypatch) -> None:
    import genre_torch.core.data.datamodule as data

    monkeypatch.setattr(data, "LOADED", {})
    reads = []
    real = data.read_csv
    monkeypatch.setattr(data, "read_csv", lambda path: reads.append(path) or real(path))
    first = GenreDataModule("music_genre", batch_size=64).load()
    again = GenreDataModule("music_genre", batch_size=128, shuffle_seed=3).load()  # batching does not matter
    assert len(reads) == 1 and again.tensors["train"][0] is first.tensors["train"][0]
    GenreDataModule("music_genre", split_seed=7).load()  # another split: read and encoded again
    (data_env / "music_genre.csv").touch()  # a changed file too
    GenreDataModule("music_genre").load()
    assert len(reads) == 3
