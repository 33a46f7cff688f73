"""Smoke tests of the speed and memory benchmarks on tiny synthetic data (never on timings) and --num_threads."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path

import pytest
import torch

from genre_torch.cli import run_cli
from genre_torch.core.data import GenreDataModule
from genre_torch.tools.speed import compare, gpu_utilization

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "music_genre.yaml")


def script_main(name: str):
    """The main() of a script in scripts/."""
    return runpy.run_path(str(ROOT / "scripts" / name))["main"]


def test_plain_loop_default_and_fast_path_see_the_same_rows_and_steps(data_env: Path, tmp_path: Path) -> None:
    out, cli = compare(CONFIG, 64, 2, tmp_path, group=3)
    train_rows = len(GenreDataModule("music_genre").load().tensors["train"][0])
    assert set(out) == {"plain", "default", "fast"}
    assert all(side["rows"] == [train_rows] for side in out.values())
    assert out["plain"]["steps"] == out["default"]["steps"] == out["fast"]["steps"] == [7]  # 420 rows / 64
    for key in ("train_wall", "train_cpu", "epoch_wall", "epoch_cpu"):
        assert all(len(side[key]) == 2 and min(side[key]) > 0 for side in out.values())
    assert cli.datamodule.batches_per_step == 3 and cli.trainer.global_step == 2 * 7


@pytest.mark.slow
def test_bench_speed_quick_writes_every_part(data_env: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    script_main("bench_speed.py")(["--quick", "--config", CONFIG, "--json", str(out)])
    result = json.loads(out.read_text())
    (row,) = result["cpu_training"]
    assert row["batch_size"] == result["default_batch_size"] == 512  # configs/music_genre.yaml
    assert row["default_ratio_train_wall"] > 0 and row["fast_ratio_train_wall"] > 0
    assert min(row[f"{side}_rows_per_s"] for side in ("plain", "default", "fast")) > 0
    assert set(result["inference"]) >= {"model batch 4096", "model full batch"}
    e2e = result["end_to_end"]
    assert e2e["epochs"] == 2 and 0 <= e2e["test_accuracy"] <= 1
    assert e2e["import_s"] > 0 and e2e["load_s"] > 0 and e2e["peak_rss_mib"] > 0
    assert ("gpu_training" in result) == torch.cuda.is_available()


@pytest.mark.slow
def test_bench_speed_startup_measures_predict_beside_torch(data_env: Path, tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    script_main("bench_speed.py")(["--startup", "--startup_repeats", "1", "--config", CONFIG, "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["repeats"] == 1
    assert 0 < result["predict_missing_input_s"] < result["predict_2000_rows_s"]  # answered before any scoring
    assert result["import_torch_s"] > 0


@pytest.mark.slow
def test_memory_check_scaled_down(tmp_path: Path) -> None:
    """The code path of the 10M-row check (scripts/bench_memory.py) on 30,000 rows."""
    out = tmp_path / "memory.json"
    script_main("bench_memory.py")(["--rows", "30000", "--batch_size", "256", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["train_rows"] == 21600 and result["features"] == 11 + 2 + 12 + 2 + 3
    assert result["val_acc"] > 3 / 114  # it learned something: chance is 1/114
    assert 0 < result["peak_rss_gib"] < result["limit_gib"]


def test_num_threads_option(data_env: Path) -> None:
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    try:
        run_cli(["--config", CONFIG, "--num_threads", str(wanted)], run=False)
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


def test_gpu_utilization_is_a_percentage_or_nan() -> None:
    value = gpu_utilization()
    assert math.isnan(value) or 0 <= value <= 100
    assert torch.cuda.is_available() or math.isnan(value)  # no GPU: NaN, not a made-up number


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_gpu_only_without_a_gpu_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script_main("bench_speed.py")(["--gpu_only"])
    assert exit_info.value.code == 2 and "needs a CUDA GPU" in capsys.readouterr().err
