"""The data wing: dataset specs and cleaning, splits, song groups, target and title encoding, preprocessing, the
LightningDataModule (datamodule.py), prepared and streamed data. It imports nothing of core.models or core.training.

`from genre_torch.core.data import GenreDataModule` (and the datamodule's other public names) imports datamodule.py
on first use, so reading a dataset spec does not import Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_DATAMODULE = ("BatchGroups", "DATA_DIR_ENV", "GenreDataModule", "TensorBatches", "data_dirs", "find_data_file")
_DATAMODULE += ("read_csv",)
__all__ = sorted(_DATAMODULE)


def __getattr__(name: str) -> Any:
    """The datamodule's public names, imported on first access (PEP 562)."""
    if name not in _DATAMODULE:
        raise AttributeError(f"module 'genre_torch.core.data' has no attribute {name!r}")
    return getattr(importlib.import_module("genre_torch.core.data.datamodule"), name)
