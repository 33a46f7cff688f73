"""Where a dataset's file is found and how a CSV is read: pandas only, so that finding or checking a file does not
import torch or Lightning (datamodule.py, which does, reads its data through these)."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pandas as pd

from genre_torch.core.data.datasets import SPECS, DatasetSpec
from genre_torch.core.errors import GenreTorchError

DATA_DIR_ENV = "GENRE_TORCH_DATA_DIR"


def data_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for a dataset file: $GENRE_TORCH_DATA_DIR if set, then <root>/data (root: the working
    directory, where `genre-torch data download` puts files by default; the tests pass the repository root)."""
    dirs = [Path(os.environ[DATA_DIR_ENV])] if os.environ.get(DATA_DIR_ENV) else []
    return [*dirs, Path(root or "") / "data"]


def find_data_file(
    spec: DatasetSpec, path: str | os.PathLike | None = None, root: str | os.PathLike | None = None
) -> Path:
    """The explicit path, else the first candidate file of `spec` in data_dirs(root)."""
    if path is not None:
        if not Path(path).is_file():
            raise GenreTorchError(f"data file {path} does not exist; fix --data.path")
        return Path(path)
    dirs = data_dirs(root)
    for folder in dirs:
        for name in spec.candidate_files():
            if (folder / name).is_file():
                return folder / name
    looked = ", ".join(str(d / n) for d in dirs for n in spec.candidate_files())
    download = f"`genre-torch data download {spec.name if spec.name in SPECS else 'SPEC.yaml'}`"
    raise GenreTorchError(
        f"no data file for {spec.name}: looked for {looked}; get it with {download}, "
        f"or set {DATA_DIR_ENV} to the folder holding {spec.name}.csv(.gz), or pass --data.path"
    )


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a .csv or .csv.gz file; anything unreadable is a clear error."""
    try:
        return pd.read_csv(path, low_memory=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, EOFError, OSError, zlib.error) as e:
        raise GenreTorchError(
            f"{path} is not a readable CSV file ({type(e).__name__}: {e}); pass a .csv or .csv.gz"
        ) from None
