"""The data wing: dataset specs and cleaning, splits, song groups, target and title encoding, preprocessing, the
LightningDataModule (datamodule.py), prepared and streamed data. It imports nothing of core.models or core.training.

`from genre_torch.core.data import GenreDataModule` (and the datamodule's other public names) imports datamodule.py
on first use, so reading a dataset spec, finding its file or reading a CSV (files.py) does not import Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_DATAMODULE = ("BatchGroups", "GenreDataModule", "TensorBatches")
_FILES = ("DATA_DIR_ENV", "data_dirs", "find_data_file", "read_csv")  # files.py: pandas, not Lightning
__all__ = sorted(_DATAMODULE + _FILES)


def __getattr__(name: str) -> Any:
    """The datamodule's and files.py's public names, imported on first access (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module 'genre_torch.core.data' has no attribute {name!r}")
    module = "genre_torch.core.data.files" if name in _FILES else "genre_torch.core.data.datamodule"
    return getattr(importlib.import_module(module), name)
