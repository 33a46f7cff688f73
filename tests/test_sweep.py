"""scripts/sweep.py --quick on synthetic data: every grid point logs hparams + final metrics; a summary prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_sweep_logs_hparams_and_prints_summary(data_env, tmp_path) -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / "sweep.py"), "--quick", "--runs_dir", "runs"]
    env = {"GENRE_TORCH_DATA_DIR": str(data_env), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| activation=") or line.startswith("| depth=")]
    assert [r.split(" | ")[0] for r in rows] == ["| activation=relu", "| activation=tanh", "| depth=1", "| depth=2"]
    val_acc = [float(r.split(" | ")[4]) for r in rows]
    assert all(0 <= v <= 100 for v in val_acc)  # accuracies in %, not the monitored val/loss (about 1.4 here)
    versions = sorted((tmp_path / "runs" / "sweep_music_genre").glob("version_*"))
    assert len(versions) == 4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(versions[0])).Reload()
    assert "hp/val_acc" in events.Tags()["scalars"]  # the final metric the HParams dashboard shows
