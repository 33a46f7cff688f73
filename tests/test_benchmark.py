"""scripts/benchmark_accuracy.py --quick end to end on a sample of the real data."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import real_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.real_data
@pytest.mark.slow
def test_benchmark_quick_prints_a_table(tmp_path) -> None:
    folder = real_file("music_genre").parent
    cmd = [sys.executable, str(ROOT / "scripts" / "benchmark_accuracy.py"), "--quick", "--datasets", "music_genre"]
    cmd += ["--seeds", "0", "1", "--ensemble"]
    env = {"GENRE_TORCH_DATA_DIR": str(folder), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    table = out.split("| dataset |", 1)[1].splitlines()[2:]  # the final table, after its header
    assert len(table) == 6  # (hgb, best, best's seed ensemble) x (audio, audio+meta)
    for line in table:
        acc = float(re.split(r"\s*\|\s*", line)[4].split(" ")[0])
        assert 10.0 < acc <= 100.0, line  # 10 genres: chance is 10 %
    assert any("audio+meta" in line and "ensemble" in line for line in table)
