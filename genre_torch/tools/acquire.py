"""Verified downloads of a dataset from its spec's source: a plain URL (requests), or Kaggle (kagglehub)."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from genre_torch.core.data import DATA_DIR_ENV
from genre_torch.core.data.datasets import DatasetSpec
from genre_torch.core.errors import GenreTorchError

INSTALL_HINT = "pip install 'genre_torch[download]'"
CHUNK = 1 << 20
BAR = {"unit": "B", "unit_scale": True, "unit_divisor": 1024}


def url_env(spec: DatasetSpec) -> str:
    """Name of the variable that points a dataset at a mirror URL (e.g. GENRE_TORCH_SPOTIFY_TRACKS_URL)."""
    return f"GENRE_TORCH_{re.sub(r'[^A-Z0-9]', '_', spec.name.upper())}_URL"


def default_dest() -> Path:
    """Where downloads go by default: $GENRE_TORCH_DATA_DIR, else ./data (where training looks)."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def download(spec: DatasetSpec, dest: Path, retries: int = 2, progress: bool = True) -> Path:
    """Fetch `spec`'s CSV into dest/<name>.csv, verified against spec.sha256 when it has one; return its path."""
    url = os.environ.get(url_env(spec)) or spec.source.get("url")
    if url:
        return download_url(spec, url, dest, retries, progress)
    if spec.source.get("kaggle"):
        return download_kaggle(spec, dest)
    raise GenreTorchError(f"{spec.name}: no download source is known; set {url_env(spec)} to a URL of its CSV")


def short_reason(error: BaseException, limit: int = 160) -> str:
    """'Type: message' of the error that says what went wrong, on one line, cut only between words.

    requests wraps urllib3's MaxRetryError, which holds the real error (NameResolutionError, ...) in .reason.
    """
    while True:
        inner = getattr(error, "reason", None)
        inner = inner if isinstance(inner, BaseException) else next(iter(error.args), None)
        if not isinstance(inner, BaseException) or inner is error:
            break
        error = inner
    message = error.args[0] if len(error.args) > 1 and isinstance(error.args[0], str) else str(error)
    message = re.sub(r"^\w*Connection\([^)]*\):\s*|<[^<>]* object at 0x[0-9a-f]+>:?\s*", "", " ".join(message.split()))
    if len(message) > limit:
        message = message[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return f"{type(error).__name__}: {message or 'no message'}"


@contextmanager
def staging(spec: DatasetSpec, dest: Path) -> Iterator[IO[bytes]]:
    """A hidden temporary file in dest (same filesystem) that becomes dest/<name>.csv, with the umask's mode,
    when the block ends without an error; otherwise it is removed, and so are the folders made for it."""
    made = [p for p in (dest, *dest.parents) if not p.exists()]  # innermost first
    try:
        dest.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{spec.name}-", suffix=".part")
    except OSError as e:
        raise GenreTorchError(f"{spec.name}: cannot write into {dest} ({type(e).__name__}: {e})") from None
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp's files are 0600
        os.replace(tmp, dest / f"{spec.name}.csv")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        for folder in made:
            with suppress(OSError):  # only empty ones go
                folder.rmdir()


def download_url(spec: DatasetSpec, url: str, dest: Path, retries: int = 2, progress: bool = True) -> Path:
    """Stream into a staging file, check sha256, rename; after a cut the next attempt continues where it
    stopped (an HTTP Range request, or skipping what is already there), so the progress bar never goes back."""
    try:
        import requests
        from tqdm import tqdm
    except ImportError:
        raise GenreTorchError(f"downloading needs requests and tqdm: {INSTALL_HINT}") from None
    target = dest / f"{spec.name}.csv"
    if spec.sha256 and target.is_file() and file_sha256(target) == spec.sha256:
        return target  # already there and valid
    if progress:
        print(f"{spec.name}: fetching {url} into {dest}", file=sys.stderr)
    digest, done, bar = hashlib.sha256(), 0, None
    try:
        with staging(spec, dest) as out:
            for attempt in range(retries + 1):
                try:
                    headers = {"Range": f"bytes={done}-"} if done else {}
                    with requests.get(url, headers=headers, stream=True, timeout=30) as response:
                        response.raise_for_status()
                        resumed = response.status_code == 206
                        skip = 0 if resumed else done  # a server without ranges sends it all again: skip what we have
                        length = response.headers.get("Content-Length", "")
                        total = int(length) + (done if resumed else 0) if length.isdigit() else None
                        if bar is None:  # made once the size is known; the same bar for every attempt
                            bar = tqdm(total=total, disable=not progress, file=sys.stderr, desc=spec.name, **BAR)
                        for chunk in response.iter_content(CHUNK):
                            if skip:
                                chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                            out.write(chunk)
                            digest.update(chunk)
                            done += len(chunk)
                            bar.update(len(chunk))
                    break
                except requests.RequestException as e:
                    if attempt == retries:
                        raise GenreTorchError(
                            f"{spec.name}: download from {url} failed after {retries + 1} attempt(s) "
                            f"({short_reason(e)}); nothing was written to {target}; run the command again "
                            f"(or set {url_env(spec)} to a mirror)"
                        ) from None
                    if progress:
                        (bar or tqdm).write(f"{spec.name}: attempt {attempt + 1} failed ({short_reason(e)}); retrying")
            if spec.sha256 and digest.hexdigest() != spec.sha256:
                raise GenreTorchError(
                    f"{spec.name}: the file from {url} failed verification (sha256 {digest.hexdigest()}, expected "
                    f"{spec.sha256}); it was removed, nothing was written to {target}"
                )
    except OSError as e:
        raise GenreTorchError(f"{spec.name}: cannot write {target} ({type(e).__name__}: {e})") from None
    finally:
        if bar is not None:
            bar.close()
    return target


def download_kaggle(spec: DatasetSpec, dest: Path) -> Path:
    """Download with kagglehub (needs Kaggle credentials), then verify and place it like a local file."""
    try:
        import kagglehub
        from kagglehub.config import get_kaggle_credentials
    except ImportError:
        raise GenreTorchError(f"downloading from Kaggle needs kagglehub: {INSTALL_HINT}") from None
    handle, member = spec.source["kaggle"], spec.source.get("file", f"{spec.name}.csv")
    page = f"https://www.kaggle.com/datasets/{handle}"
    manual = (
        f"or download {member} from {page} yourself and run "
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
        fetched = kagglehub.dataset_download(handle, path=member)
    except Exception as e:  # kagglehub raises many types (HTTP, auth, not found, network)
        raise GenreTorchError(f"{spec.name}: Kaggle download failed ({short_reason(e)}); {manual}") from None
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
    target = dest / f"{spec.name}.csv"
    digest = hashlib.sha256()
    try:
        with staging(spec, dest) as out, open_csv_bytes(source, spec.source.get("file", "")) as src:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
            if spec.sha256 and digest.hexdigest() != spec.sha256:
                raise GenreTorchError(
                    f"{spec.name}: {source} failed verification (sha256 {digest.hexdigest()}, expected "
                    f"{spec.sha256}); nothing was written to {target}"
                )
    except (OSError, EOFError, zipfile.BadZipFile, gzip.BadGzipFile) as e:
        raise GenreTorchError(f"{source} could not be read ({type(e).__name__}: {e})") from None
    return target


def file_sha256(path: Path) -> str:
    """sha256 of the uncompressed CSV in a .csv, .csv.gz or .zip file."""
    digest = hashlib.sha256()
    with open_csv_bytes(path, "") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
