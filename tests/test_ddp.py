"""DDP on CPU: 2 processes (gloo) give the same model as 1 process that sees the same rows per step."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genre_torch.cli import run_cli
from genre_torch.core.data import GenreDataModule

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COMMON = ["--config", str(CONFIGS / "music_genre.yaml"), "--trainer.max_epochs", "1", "--num_threads", "1"]
COMMON += ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]


def scalars(run_dir: Path) -> dict[str, float]:
    """The last value of every scalar in a TensorBoard run folder."""
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}


def per_rank_batch(train_rows: int) -> int:
    """A batch size that splits each rank's half of the rows into equal batches (so steps line up exactly)."""
    assert train_rows % 2 == 0
    return max(b for b in range(1, 33) if (train_rows // 2) % b == 0)


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(data_env: Path, warm: dict[str, Path]) -> None:
    train_rows = len(GenreDataModule("music_genre").load().tensors["train"][0])
    batch = per_rank_batch(train_rows)
    # rank r takes rows r, r+2, ... of the epoch's permutation; its step i batch joined with the other
    # rank's is the single process's step i batch of 2 * batch rows, and DDP averages the two gradients
    ddp = [warm["python"], "-m", "genre_torch.cli", "fit", *COMMON, "--config", str(CONFIGS / "presets" / "ddp.yaml")]
    ddp += ["--data.batch_size", str(batch), "--runs_dir", "ddp_runs", "--checkpoints_dir", "ddp_ckpt"]
    done = subprocess.run(ddp, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    single = run_cli(["fit", *COMMON, "--data.batch_size", str(2 * batch)])

    assert len(re.findall(r"test accuracy: ([0-9.]+)", done.stdout)) == 1  # only rank 0 reports
    ddp_test = float(re.search(r"test accuracy: ([0-9.]+)", done.stdout).group(1))
    assert ddp_test == pytest.approx(float(single.trainer.callback_metrics["test/acc"]), abs=1e-4)

    # one run folder and one checkpoint folder (rank 0 writes), holding best + last
    assert [p.name for p in Path("ddp_ckpt/music_genre").iterdir()] == ["version_0"]
    assert [p.name for p in Path("ddp_runs/music_genre").iterdir()] == ["version_0"]
    files = sorted(p.name for p in Path("ddp_ckpt/music_genre/version_0").iterdir())
    assert len(files) == 2 and "last.ckpt" in files
    single_best = Path(single.trainer.checkpoint_callback.best_model_path).name
    assert files[0] == single_best  # the name carries val/acc: synced over both ranks' shards of val

    ckpt = torch.load("ddp_ckpt/music_genre/version_0/last.ckpt", weights_only=True)
    assert ckpt["provenance"]["machine"]["devices"] == 2  # the provenance names both processes' devices
    a = ckpt["state_dict"]
    b = torch.load(Path(single.trainer.checkpoint_callback.dirpath) / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key

    # train metrics are logged with sync_dist (mean over ranks), validation metrics by torchmetrics' sync
    ddp_logged, single_logged = scalars(Path("ddp_runs/music_genre/version_0")), scalars(Path(single.trainer.log_dir))
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert ddp_logged[tag] == pytest.approx(single_logged[tag], abs=1e-4), tag
