"""scripts/tune.py --quick on synthetic data: a study runs on validation only and writes a config that parses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genre_torch.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_study_writes_a_usable_config(data_env, tmp_path, capsys) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "tuned.yaml"
    cmd = [sys.executable, str(ROOT / "scripts" / "tune.py"), "--quick", "--features", "audio+meta", "--out", str(out)]
    env = {"GENRE_TORCH_DATA_DIR": str(data_env), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=True)
    assert "best validation accuracy" in done.stdout
    config = yaml.safe_load(out.read_text())
    assert config["model"]["backbone"]["class_path"].endswith("PLRMLP") and config["data"]["features"] == "audio+meta"
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(out), "--print_config"])
    assert exit_info.value.code in (0, None) and "PLRMLP" in capsys.readouterr().out
