"""One data lookup rule: training, the real-data tests and the benchmarks find what `data download` placed."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import tests.conftest as conftest
from genre_torch.core.data import find_data_file
from genre_torch.core.data.datasets import MUSIC_GENRE

ROOT = Path(__file__).resolve().parents[1]


def test_real_data_tests_find_a_download_in_the_repository(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(conftest, "REPO", tmp_path)  # a fresh clone
    monkeypatch.delenv("GENRE_TORCH_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path / "..")  # tests may run from anywhere
    with pytest.raises(pytest.skip.Exception, match="real music_genre data not found"):
        conftest.real_file("music_genre")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "music_genre.csv").write_text("x\n")  # where `genre-torch data download` puts it
    assert conftest.real_file("music_genre") == tmp_path / "data" / "music_genre.csv"
    monkeypatch.setenv("GENRE_TORCH_DATA_DIR", str(tmp_path / "elsewhere"))  # .ci/run: ../shared/data
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "music_genre.csv.gz").write_bytes(b"")
    assert conftest.real_file("music_genre") == tmp_path / "elsewhere" / "music_genre.csv.gz"


def test_find_data_file_looks_under_the_given_root(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GENRE_TORCH_DATA_DIR", raising=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "music_genre.csv").write_text("x\n")
    assert find_data_file(MUSIC_GENRE, root=tmp_path) == tmp_path / "data" / "music_genre.csv"


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_bench_speed_without_data_is_one_line(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GENRE_TORCH_DATA_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_speed.py"), "--quick", "--no_e2e"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("bench_speed: error: no data file for music_genre")


def test_bench_speed_hands_the_data_folder_to_its_subprocesses(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENRE_TORCH_DATA_DIR", raising=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "music_genre.csv").write_text("x\n")
    locate_data = runpy.run_path(str(ROOT / "scripts" / "bench_speed.py"))["locate_data"]
    locate_data([str(ROOT / "configs" / "music_genre.yaml")])
    assert os.environ["GENRE_TORCH_DATA_DIR"] == str(tmp_path / "data")  # absolute: the fits run elsewhere
