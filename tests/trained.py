"""One small model per synthetic dataset, trained once per session, shared by the report/predict/export tests."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from genre_torch.cli import run_cli
from genre_torch.core.data import GenreDataModule
from tests.conftest import make_music_genre, make_spotify_tracks

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Trained:
    """Where a trained run left its files, and the test accuracy its report recorded."""

    dataset: str
    data: Path  # raw synthetic CSV it was trained on
    ckpt: Path  # best checkpoint
    run_dir: Path  # TensorBoard run folder holding the test report
    test_rows: Path  # the cleaned test split as CSV, in the dataset's own format
    test_acc: float
    datamodule: GenreDataModule


@functools.cache
def trained(dataset: str) -> Trained:
    """Fit configs/<dataset>.yaml for 5 epochs on synthetic data in a temporary folder (once per session)."""
    root = Path(tempfile.mkdtemp(prefix=f"genre_torch_{dataset}_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    data = root / f"{dataset}.csv"
    (make_music_genre if dataset == "music_genre" else make_spotify_tracks)().to_csv(data, index=False)
    cli = run_cli(
        ["fit", "--config", str(CONFIGS / f"{dataset}.yaml"), "--data.path", str(data)]
        + ["--trainer.max_epochs", "5", "--trainer.enable_progress_bar", "false", "--data.batch_size", "64"]
        + ["--runs_dir", str(root / "runs"), "--checkpoints_dir", str(root / "checkpoints")]
    )
    dm = cli.datamodule
    test_rows = root / "test_rows.csv"
    dm.frame.iloc[dm.splits["test"]].to_csv(test_rows, index=False)
    run_dir = Path(cli.trainer.logger.log_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    ckpt = Path(cli.trainer.checkpoint_callback.best_model_path)
    return Trained(dataset, data, ckpt, run_dir, test_rows, metrics["accuracy"], dm)
