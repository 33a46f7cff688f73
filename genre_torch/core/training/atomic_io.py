"""AtomicCheckpointIO: Lightning's checkpoint writer, atomic (its own module: the readers need no Lightning)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from genre_torch.core.training.safe_files import atomic_path, check_finite, verify_archive, write_error


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO that writes each checkpoint to a temporary file in its own folder, fsyncs and renames.

    Disk full is a one-line GenreTorchError and leaves the previous checkpoints as they were;
    loading (resume) verifies the archive checksums and refuses non-finite weights.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Serialise in memory, then write atomically next to `path` (remote URLs: Lightning's own way)."""
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(target.parent, e) from None
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            fh.write(buffer.getbuffer())
        return None

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Lightning's load after the checksum check; non-finite weights are refused."""
        if "://" not in str(path) and Path(path).is_file():
            verify_archive(path)
        kwargs = {} if map_location is None else {"map_location": map_location}
        checkpoint = super().load_checkpoint(path, weights_only=weights_only, **kwargs)
        check_finite(checkpoint, path)
        return checkpoint
