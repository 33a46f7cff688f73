"""Verified downloads of the real datasets: a plain URL through pooch, or Kaggle through kagglehub."""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from genre_torch.core.data import DATA_DIR_ENV
from genre_torch.core.datasets import DatasetSpec
from genre_torch.core.errors import GenreTorchError


@dataclass(frozen=True)
class Source:
    """Where `genre-torch data download` gets a dataset: a public URL, else a Kaggle dataset file."""

    url: str = ""
    kaggle: str = ""  # owner/dataset
    file: str = ""  # file name inside the Kaggle dataset


SOURCES: dict[str, Source] = {
    "spotify_tracks": Source(
        url="https://huggingface.co/datasets/maharshipandya/spotify-tracks-dataset/resolve/main/dataset.csv"
    ),
    "music_genre": Source(kaggle="vicsuperman/prediction-of-music-genre", file="music_genre.csv"),
}
INSTALL_HINT = "pip install 'genre_torch[download]'"


def url_env(spec: DatasetSpec) -> str:
    """Name of the variable that points a dataset at a mirror URL (e.g. GENRE_TORCH_SPOTIFY_TRACKS_URL)."""
    return f"GENRE_TORCH_{spec.name.upper()}_URL"


def default_dest() -> Path:
    """Where downloads go by default: $GENRE_TORCH_DATA_DIR, else ./data (where training looks)."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def download(spec: DatasetSpec, dest: Path, retries: int = 2, progress: bool = True) -> Path:
    """Fetch `spec`'s CSV into dest/<name>.csv, verified against spec.sha256; return its path."""
    source = SOURCES.get(spec.name, Source())
    url = os.environ.get(url_env(spec)) or source.url
    if url:
        return download_url(spec, url, dest, retries, progress)
    if source.kaggle:
        return download_kaggle(spec, source, dest)
    raise GenreTorchError(f"{spec.name}: no download source is known; set {url_env(spec)} to a URL of its CSV")


def download_url(spec: DatasetSpec, url: str, dest: Path, retries: int = 2, progress: bool = True) -> Path:
    """Download with pooch: temporary file in dest, sha256 check, rename; a bad file is removed."""
    try:
        import pooch
        import requests
    except ImportError:
        raise GenreTorchError(f"downloading needs pooch: {INSTALL_HINT}") from None
    fname = f"{spec.name}.csv"
    pooch.get_logger().setLevel("WARNING")  # our own one-line messages instead of pooch's log lines
    if progress:
        print(f"{spec.name}: fetching {url} into {dest}", file=sys.stderr)
    fetcher = pooch.create(
        path=dest, base_url="", registry={fname: f"sha256:{spec.sha256}"}, urls={fname: url}, retry_if_failed=retries
    )
    try:
        return Path(fetcher.fetch(fname, progressbar=progress))
    except ValueError as e:  # pooch's hash mismatch; the temporary file is already deleted
        if "hash" not in str(e):
            raise GenreTorchError(f"{spec.name}: {' '.join(str(e).split())}") from None
        got = str(e).split("(", 1)[-1].split(")", 1)[0]
        raise GenreTorchError(
            f"{spec.name}: the file from {url} failed verification (sha256 {got}, expected {spec.sha256}); "
            f"it was removed, nothing was written to {dest / fname}"
        ) from None
    except requests.RequestException as e:
        reason = " ".join(str(e).split())[:200]
        raise GenreTorchError(
            f"{spec.name}: download from {url} failed after {retries + 1} attempt(s) ({type(e).__name__}: {reason}); "
            f"the partial file was removed, run the command again (or set {url_env(spec)} to a mirror)"
        ) from None


def download_kaggle(spec: DatasetSpec, source: Source, dest: Path) -> Path:
    """Download with kagglehub (needs Kaggle credentials), then verify and place it like a local file."""
    try:
        import kagglehub
        from kagglehub.config import get_kaggle_credentials
    except ImportError:
        raise GenreTorchError(f"downloading from Kaggle needs kagglehub: {INSTALL_HINT}") from None
    page = f"https://www.kaggle.com/datasets/{source.kaggle}"
    manual = (
        f"or download {source.file} from {page} yourself and run "
        f"`genre-torch data download {spec.name} --file PATH` (a .csv or the Kaggle .zip) to verify and place it"
    )
    try:
        has_credentials = get_kaggle_credentials() is not None
    except ValueError as e:  # a broken kaggle.json
        raise GenreTorchError(f"{spec.name}: {e}; {manual}") from None
    if not has_credentials:
        raise GenreTorchError(
            f"{spec.name} comes from Kaggle and needs an API token: set KAGGLE_USERNAME and KAGGLE_KEY "
            f"(or KAGGLE_API_TOKEN), or save kaggle.json from kaggle.com/settings to ~/.kaggle/kaggle.json; {manual}"
        )
    try:
        fetched = kagglehub.dataset_download(source.kaggle, path=source.file)
    except Exception as e:  # kagglehub raises many types (HTTP, auth, not found, network)
        reason = " ".join(str(e).split())[:200]
        raise GenreTorchError(f"{spec.name}: Kaggle download failed ({type(e).__name__}: {reason}); {manual}") from None
    return place_file(spec, Path(fetched), dest)


@contextmanager
def open_csv_bytes(path: Path, member: str) -> Iterator[IO[bytes]]:
    """The uncompressed CSV bytes of a .csv, .csv.gz or .zip (the member named `member`, else the only CSV)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            csvs = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            names = [n for n in csvs if Path(n).name == member] or csvs
            if len(names) != 1:
                raise GenreTorchError(f"{path}: expected one CSV ({member}) in the archive, found {csvs or 'none'}")
            with archive.open(names[0]) as f:
                yield f
    elif _is_gzip(path):
        with gzip.open(path, "rb") as f:
            yield f
    else:
        with open(path, "rb") as f:
            yield f


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def place_file(spec: DatasetSpec, source: Path, dest: Path) -> Path:
    """Copy a local file's CSV into dest/<name>.csv if its sha256 matches spec.sha256 (atomic; else an error)."""
    if not source.is_file():
        raise GenreTorchError(f"{source} does not exist; pass the downloaded .csv, .csv.gz or .zip")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{spec.name}.csv"
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{spec.name}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open_csv_bytes(source, SOURCES.get(spec.name, Source()).file) as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != spec.sha256:
            raise GenreTorchError(
                f"{spec.name}: {source} failed verification (sha256 {digest.hexdigest()}, expected {spec.sha256}); "
                f"nothing was written to {target}"
            )
        os.replace(tmp, target)
    except (OSError, EOFError, zipfile.BadZipFile, gzip.BadGzipFile) as e:
        raise GenreTorchError(f"{source} could not be read ({type(e).__name__}: {e})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def file_sha256(path: Path) -> str:
    """sha256 of the uncompressed CSV in a .csv, .csv.gz or .zip file."""
    digest = hashlib.sha256()
    with open_csv_bytes(path, "") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
