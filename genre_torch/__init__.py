"""genre_torch: learn the genre of a song from its Spotify audio features.

The names below are imported on first use, so `import genre_torch` (and `genre-torch --help`) stays fast.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_EXPORTS = {
    "DatasetSpec": "genre_torch.core.data.datasets",
    "GenreClassifier": "genre_torch.core.training.module",
    "GenreDataModule": "genre_torch.core.data.datamodule",
    "GenreTorchError": "genre_torch.core.errors",
    "Predictor": "genre_torch.tools.predict",
    "Preprocessor": "genre_torch.core.data.preprocessing",
    "load_predictor": "genre_torch.tools.predict",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'genre_torch' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def _one_line(formatter: Any) -> Any:
    """A warnings.formatwarning writing genre_torch's own warnings as `warning: ...`, others with `formatter`."""

    def formatwarning(message: Any, category: type, filename: str, lineno: int, line: str | None = None) -> str:
        if category.__module__.startswith("genre_torch."):  # e.g. DataWarning: a note about the user's data
            return "warning: " + " ".join(str(message).split()) + "\n"
        return formatter(message, category, filename, lineno, line)

    return formatwarning


warnings.formatwarning = _one_line(warnings.formatwarning)
