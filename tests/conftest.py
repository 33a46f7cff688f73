"""Tiny synthetic CSVs with the real schemas and quirks of both datasets."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pytest

from genre_torch.core.data import find_data_file
from genre_torch.core.data.datasets import get_spec
from genre_torch.core.errors import GenreTorchError

REPO = Path(__file__).resolve().parents[1]

# Under nohup or `make test &` SIGINT arrives ignored, and every command the tests start would inherit that (as a
# background job should): the Ctrl-C tests would see a run go on. The suite's own commands get the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
KEYS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def _audio(rng: np.random.Generator, genre_idx: np.ndarray, n_genres: int) -> dict[str, np.ndarray]:
    """Audio features whose means depend on the genre, so a model can learn something."""
    shift = genre_idx / max(n_genres - 1, 1)
    noise = lambda scale=0.15: rng.normal(0, scale, len(genre_idx))  # noqa: E731
    return {
        "popularity": np.clip(20 + 50 * shift + 10 * noise(), 0, 100).round(),
        "acousticness": np.clip(1 - shift + noise(), 0, 1),
        "danceability": np.clip(shift + noise(), 0, 1),
        "duration_ms": (180000 + 60000 * shift + 20000 * noise()).round(),
        "energy": np.clip(0.3 + 0.5 * shift + noise(), 0, 1),
        "instrumentalness": np.clip(0.5 - 0.4 * shift + noise(), 0, 1),
        "liveness": np.clip(0.2 + noise(), 0, 1),
        "loudness": -20 + 15 * shift + 2 * noise(),
        "speechiness": np.clip(0.05 + 0.3 * shift + noise(0.05), 0, 1),
        "tempo": 90 + 60 * shift + 10 * noise(),
        "valence": np.clip(0.2 + 0.6 * shift + noise(), 0, 1),
    }


def make_music_genre(n: int = 600, seed: int = 0, n_genres: int = 4) -> pd.DataFrame:
    """music_genre schema: 5 all-empty rows, tempo '?', duration_ms -1, key letters, mode Major/Minor."""
    rng = np.random.default_rng(seed)
    genres = np.array(["Electronic", "Anime", "Jazz", "Rap", "Blues", "Rock"][:n_genres])
    g = np.arange(n) % n_genres
    audio = _audio(rng, g, n_genres)
    df = pd.DataFrame(
        {
            "instance_id": (10000 + np.arange(n)).astype(float),
            "artist_name": [f"artist{i % 37}" for i in range(n)],
            "track_name": [f"track{i}" for i in range(n)],
            **{
                k: audio[k]
                for k in ["popularity", "acousticness", "danceability", "duration_ms", "energy", "instrumentalness"]
            },
            "key": rng.choice(KEYS, n),
            "liveness": audio["liveness"],
            "loudness": audio["loudness"],
            "mode": np.where(g % 2 == 0, "Major", "Minor"),
            "speechiness": audio["speechiness"],
            "tempo": audio["tempo"].round(3).astype(str),
            "obtained_date": rng.choice(["4-Apr", "3-Apr", "0/4"], n),
            "valence": audio["valence"],
            "music_genre": genres[g],
        }
    )
    df.loc[df.index % 10 == 3, "tempo"] = "?"
    df.loc[df.index % 10 == 4, "duration_ms"] = -1.0
    empty = pd.DataFrame(np.nan, index=range(5), columns=df.columns)
    return pd.concat([df.iloc[: n // 2], empty, df.iloc[n // 2 :]], ignore_index=True)


def make_spotify_tracks(n: int = 600, seed: int = 0, n_genres: int = 4) -> pd.DataFrame:
    """spotify_tracks schema: unnamed index, duplicate (track_id, genre) rows, one empty artist row, explicit."""
    rng = np.random.default_rng(seed)
    genres = np.array(["acoustic", "afrobeat", "alt-rock", "ambient", "anime", "black-metal"][:n_genres])
    g = np.repeat(np.arange(n_genres), n // n_genres)  # contiguous genre blocks, as in the real file
    audio = _audio(rng, g, n_genres)
    df = pd.DataFrame(
        {
            "track_id": [f"id{i:05d}" for i in range(len(g))],
            "artists": [f"artist{i % 29};feat{i % 7}" if i % 5 == 0 else f"artist{i % 29}" for i in range(len(g))],
            "album_name": [f"album{i % 53}" for i in range(len(g))],
            "track_name": [f"track{i}" for i in range(len(g))],
            "popularity": audio["popularity"].astype(int),
            "duration_ms": audio["duration_ms"].astype(int),
            "explicit": np.where(rng.random(len(g)) < 0.2, "True", "False"),
            "danceability": audio["danceability"],
            "energy": audio["energy"],
            "key": rng.integers(0, 12, len(g)),
            "loudness": audio["loudness"],
            "mode": (g % 2),
            "speechiness": audio["speechiness"],
            "acousticness": audio["acousticness"],
            "instrumentalness": audio["instrumentalness"],
            "liveness": audio["liveness"],
            "valence": audio["valence"],
            "tempo": audio["tempo"],
            "time_signature": rng.choice([3, 4, 4, 4, 5], len(g)),
            "track_genre": genres[g],
        }
    )
    df.loc[7, ["artists", "album_name", "track_name"]] = np.nan
    df.loc[len(df) - 1, "track_id"] = df.loc[0, "track_id"]  # same track under another genre: kept
    dup = df.iloc[[1, 2, 3]]  # exact duplicates of (track_id, track_genre): dropped
    return pd.concat([df, dup], ignore_index=True)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding music_genre.csv and spotify_tracks.csv.gz as the real files are named."""
    folder = tmp_path_factory.mktemp("data")
    make_music_genre().to_csv(folder / "music_genre.csv", index=False)
    make_spotify_tracks().to_csv(folder / "spotify_tracks.csv.gz", index=True)
    return folder


@pytest.fixture
def data_env(data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point GENRE_TORCH_DATA_DIR at the synthetic data and run in a scratch folder."""
    monkeypatch.setenv("GENRE_TORCH_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    return data_dir


@pytest.fixture(scope="session")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """`python` (for `-m` and `-c`) and `genre-torch` whose commands fork from one server per test process that has
    imported torch, Lightning and the package (tests/zygote.py): for tests of what a command does, not of startup."""
    from tests import zygote

    folder = tmp_path_factory.mktemp("warm")
    server, socket_path = zygote.start(folder)
    paths = {"python": folder / "python", "genre-torch": folder / "genre-torch"}
    paths["python"].write_text(zygote.python_script(socket_path))
    paths["genre-torch"].write_text(zygote.client_script(socket_path))
    for path in paths.values():
        path.chmod(0o755)
    yield paths
    server.terminate()
    server.wait()


def real_file(name: str) -> Path:
    """Path of a real dataset found as training finds it ($GENRE_TORCH_DATA_DIR, else data/ in the repository,
    where `genre-torch data download` run from the repository root puts it); skip the test when it is absent."""
    try:
        return find_data_file(get_spec(name), root=REPO).resolve()
    except GenreTorchError as e:
        pytest.skip(f"real {name} data not found ({e})")


@pytest.fixture(autouse=True)
def fresh_data_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without the process's cache of encoded data (tests patch what loading does)."""
    import genre_torch.core.data.datamodule

    monkeypatch.setattr(genre_torch.core.data.datamodule, "LOADED", {})


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose system dependency is missing, saying which; under CI (CI=true) fail instead."""
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"{reason}; CI must run these tests", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
