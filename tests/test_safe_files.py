"""core/training/safe_files + atomic_io: AtomicCheckpointIO with a plain Trainer (whole files, resume, disk full on a
real small filesystem and everywhere by a failing fsync, $TMPDIR unused) and the removal of stale temporary files."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training.atomic_io import AtomicCheckpointIO
from genre_torch.core.training.safe_files import HOST, remove_stale_temps
from tests.fault_tools import listing, small_fs

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class Wide(pl.LightningModule):
    """A linear model whose checkpoint is about 120 KB."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(32, 900)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit_wide(folder: Path, epochs: int = 3, ckpt_path: Path | None = None) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=folder.parent, callbacks=[ModelCheckpoint(dirpath=folder, save_top_k=-1)],
        plugins=[AtomicCheckpointIO()],
    )  # fmt: skip
    trainer.fit(Wide(), DataLoader(TensorDataset(torch.randn(8, 32)), batch_size=4), ckpt_path=ckpt_path)
    return trainer


def test_checkpoint_saves_are_whole_files_that_resume(tmp_path) -> None:
    fit_wide(tmp_path / "ck", epochs=2)
    assert listing(tmp_path / "ck") == ["epoch=0-step=2.ckpt", "epoch=1-step=4.ckpt"]
    trainer = fit_wide(tmp_path / "ck", epochs=3, ckpt_path=tmp_path / "ck" / "epoch=1-step=4.ckpt")
    assert trainer.global_step == 6 and "epoch=2-step=6.ckpt" in listing(tmp_path / "ck")


def test_checkpoint_disk_full_everywhere(tmp_path, monkeypatch) -> None:
    folder, real = tmp_path / "ck", os.fsync

    def full_after_one(fd: int) -> None:
        if list(folder.glob("*.ckpt")):
            raise ENOSPC
        real(fd)

    monkeypatch.setattr(os, "fsync", full_after_one)
    with pytest.raises(GenreTorchError, match="No space left on device") as info:
        fit_wide(folder)
    assert "\n" not in str(info.value) and "epoch=1-step=4.ckpt" in str(info.value)
    assert listing(folder) == ["epoch=0-step=2.ckpt"]
    assert AtomicCheckpointIO().load_checkpoint(folder / "epoch=0-step=2.ckpt")["epoch"] == 0


def test_checkpoint_disk_full_on_a_small_filesystem(tmp_path, monkeypatch) -> None:
    """--checkpoints_dir on a full 200 KB filesystem, $TMPDIR elsewhere: no truncated checkpoint, the last one valid."""
    (tmp_path / "tmpdir").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmpdir"))
    with small_fs(tmp_path / "small", "200k") as small:
        with pytest.raises(GenreTorchError, match="No space left on device"):
            fit_wide(small)
        assert listing(small) == ["epoch=0-step=2.ckpt"]
        ckpt = AtomicCheckpointIO().load_checkpoint(small / "epoch=0-step=2.ckpt")
        assert ckpt["state_dict"]["layer.weight"].shape == (900, 32)
    assert listing(tmp_path / "tmpdir") == []


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f".p.csv.{HOST}-{dead.pid}.0123abcd.tmp",
            "dead_folder": f".prep.{HOST}-{dead.pid}.89abcdef.tmp",
            "alive": f".p.csv.{HOST}-{alive.pid}.0123abcd.tmp",
            "other_host": f".p.csv.{HOST}x-{dead.pid}.0123abcd.tmp",
            "unrelated": ".notes.tmp",
        }
        for key, name in names.items():
            (tmp_path / name).mkdir() if key == "dead_folder" else (tmp_path / name).write_text("x")
        assert sorted(p.name for p in remove_stale_temps(tmp_path)) == sorted([names["dead"], names["dead_folder"]])
        assert listing(tmp_path) == sorted(names[k] for k in ("alive", "other_host", "unrelated"))
    finally:
        alive.kill()
        alive.wait()


def test_genre_torch_fit_writes_checkpoints_atomically(data_env) -> None:
    from genre_torch.cli import run_cli
    from genre_torch.core.training.atomic_io import AtomicCheckpointIO

    config = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")
    cli = run_cli(["--config", config, "--trainer.max_epochs", "1"], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
