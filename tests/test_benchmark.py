"""scripts/benchmark_accuracy.py --quick end to end on a sample of the real data, and its anchors on toy data."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from genre_torch.core.training.provenance import code_record, describe_code
from genre_torch.tools import benchmark
from genre_torch.tools.benchmark import blend
from genre_torch.tools.reference_models import ANCHORS, fit_anchor, missing
from tests.conftest import real_file

ROOT = Path(__file__).resolve().parents[1]
MARKER_END = "<!-- benchmark_accuracy:end -->"


@pytest.mark.real_data
@pytest.mark.slow
def test_benchmark_quick_prints_a_table(tmp_path) -> None:
    folder = real_file("music_genre").parent
    models = [m for m in ANCHORS if not missing(m)] + ["best"]
    cmd = [sys.executable, str(ROOT / "scripts" / "benchmark_accuracy.py"), "--quick", "--datasets", "music_genre"]
    cmd += ["--features", "audio+meta", "--seeds", "0", "--ensemble", "--blend", "--models", *models]
    env = {"GENRE_TORCH_DATA_DIR": str(folder), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=True)
    out = done.stdout
    # the date, the commit and the data file (the sample it trained on) the numbers were measured at
    stamp = r"\(\d{4}-\d\d-\d\d, commit [0-9a-f]{7}(\+dirty)?, data music_genre_quick.csv sha256 [0-9a-f]{12}\)"
    assert re.search(r"`python scripts/benchmark_accuracy.py --quick .*` " + stamp, out)
    assert not [line for line in out.splitlines() if line.startswith(("epoch ", "RESULT "))]  # stdout: the table
    assert done.stderr.count("RESULT music_genre") == 3 * len(models)  # one progress line per task, on stderr
    table = out.split("| dataset |", 1)[1].splitlines()[2:]  # the final table, after its header
    cells = [re.split(r"\s*\|\s*", line)[1:-1] for line in table]
    assert len(cells) == 3 * (len(models) + 2)  # (models + the network's seed ensemble + the blend) x 3 splits
    assert [c[2] for c in cells] == [s for s in ("song", "artist", "canonical") for _ in range(len(models) + 2)]
    assert all(c[3].startswith("blend, equal weights: ") for c in cells[len(models) + 1 :: len(models) + 2])
    for row in cells:
        assert 10.0 < float(row[4].split(" ")[0]) <= 100.0, row  # 10 genres: chance is 10 %
        n_twin, n_free = (int(re.search(r"\((\d+)\)$", row[i]).group(1)) for i in (5, 6))
        assert n_twin + n_free in range(500, 700)  # the sample's test rows (20 % of 3,000)
        assert row[2] != "song" or n_twin == 0  # no song in training and test: no twin rows
    single, ensemble = cells[len(models) - 1], cells[len(models)]
    assert "ensemble" in ensemble[3] and ensemble[4] == single[4]  # 1 seed: the checkpoint re-encodes raw rows alike


def children(pid: int) -> list[int]:
    """Processes whose parent is pid (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether pid runs (a zombie or a gone process does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def spawned(pid: int) -> list[int]:
    """The pool workers of pid (the resource tracker is a child too: workers are the ones running spawn_main)."""
    return [c for c in children(pid) if b"spawn_main" in read(f"/proc/{c}/cmdline")]


def read(path: str) -> bytes:
    """A /proc file's bytes; empty once its process is gone."""
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def until(condition, deadline: float) -> None:
    """Poll `condition` every 0.2 s until it holds or `deadline` seconds have passed."""
    end = time.monotonic() + deadline
    while not condition() and time.monotonic() < end:
        time.sleep(0.2)


@pytest.mark.real_data
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_killing_the_benchmark_stops_its_workers(tmp_path) -> None:
    folder = real_file("music_genre").parent
    cmd = [sys.executable, str(ROOT / "scripts" / "benchmark_accuracy.py"), "--quick", "--datasets", "music_genre"]
    cmd += ["--features", "audio", "--splits", "canonical", "--models", "mlp", "--seeds", "0", "1", "--jobs", "2"]
    env = {**os.environ, "GENRE_TORCH_DATA_DIR": str(folder), "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # conditions, each with a deadline generous enough for a loaded machine, never a fixed wait
        workers: list[int] = []
        until(lambda: len(spawned(parent.pid)) == 2 or parent.poll() is not None, 300)
        workers = spawned(parent.pid)
        assert len(workers) == 2, "the benchmark never started its two workers"
        # past their imports (torch loaded): in their initialiser or a task
        until(lambda: all(b"libtorch" in read(f"/proc/{w}/maps") for w in workers), 300)
        parent.send_signal(signal.SIGTERM)
        parent.wait(300)
        until(lambda: not any(alive(w) for w in workers), 300)
        assert not [w for w in workers if alive(w)], "workers kept running after the benchmark was killed"
    finally:
        parent.kill()
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)


# realmlp is slow; lightgbm must not warn (its deprecated eval_set printed a warning per fit into benchmark logs)
MARKS = {"realmlp": [pytest.mark.slow], "lightgbm": [pytest.mark.filterwarnings("error")]}


@pytest.mark.parametrize("name", [pytest.param(a, marks=MARKS.get(a, [])) for a in ANCHORS])
def test_anchor_learns_a_toy_problem_and_keeps_class_columns(name: str) -> None:
    if missing(name):
        pytest.skip(missing(name))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0.5)  # 4 classes, one absent from validation below
    data = {"train": (x[:400], y[:400]), "val": (x[400:500], np.where(y[400:500] == 3, 0, y[400:500])),
            "test": (x[500:], y[500:])}  # fmt: skip
    proba, note = fit_anchor(name, data, 4, seed=0, quick=name != "realmlp")  # its quick 2 epochs: too few
    assert proba.shape == (100, 4) and np.allclose(proba.sum(1), 1, atol=1e-5) and note
    assert (proba.argmax(1) == y[500:]).mean() > 0.6  # chance is about 0.3


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_results_prints_only_its_table_on_stdout(data_env: Path, tmp_path: Path) -> None:
    config = tmp_path / "short.yaml"
    config.write_text((ROOT / "configs" / "music_genre.yaml").read_text().replace("max_epochs: 10", "max_epochs: 2"))
    cmd = [sys.executable, str(ROOT / "scripts" / "results.py"), "--configs", str(config), "--seeds", "0", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    assert "epoch 2/2" in done.stderr  # the fits' lines go to stderr
    lines = [line for line in done.stdout.splitlines() if line]
    assert lines[0].startswith("`python scripts/results.py --configs") and lines[1].startswith("| config |")
    sha = hashlib.sha256((data_env / "music_genre.csv").read_bytes()).hexdigest()[:12]
    commit = describe_code(code_record())  # the numbers name the commit and data file they were measured at
    assert re.search(rf"\(\d{{4}}-\d\d-\d\d, commit {re.escape(commit)}, data music_genre.csv sha256 {sha}\)", lines[0])
    (row,) = lines[3:]
    assert row.startswith("| short | audio | ") and row.split(" | ")[5] == "2"  # 2 epochs, as the config says


def test_blend_is_the_equal_weight_mean_of_each_models_seed_mean() -> None:
    y, twins = np.array([0, 1]), np.array([False, True])

    def run(*rows: list[float]) -> dict:
        return {"y": y, "twins": twins, "proba": np.array(rows)}

    # model a (two seeds) says class 0 on both rows, model b says class 1 on both; only row 1 leans to b overall
    a = [run([0.9, 0.1], [0.6, 0.4]), run([0.7, 0.3], [0.6, 0.4])]
    b = [run([0.4, 0.6], [0.2, 0.8])]
    result = blend([a, b])  # row 0: (0.8 + 0.4) / 2 = 0.6 for class 0; row 1: (0.6 + 0.2) / 2 = 0.4 for class 0
    assert result["hits"].tolist() == [True, True] and result["acc"] == 1.0
    assert blend([a])["hits"].tolist() == [True, False]
    with pytest.raises(ValueError, match="same test rows"):
        blend([a, [{**b[0], "y": y[::-1]}]])


@pytest.mark.real_data
@pytest.mark.slow
def test_benchmark_keeps_results_and_resumes_only_what_is_missing(tmp_path) -> None:
    folder = real_file("music_genre").parent
    config = tmp_path / "mlp.yaml"
    config.write_text((ROOT / "configs" / "music_genre.yaml").read_text())
    env = {"GENRE_TORCH_DATA_DIR": str(folder), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}

    readme = tmp_path / "README.md"
    readme.write_text("# title\n<!-- benchmark_accuracy:begin -->\nold table\n<!-- benchmark_accuracy:end -->\nend\n")

    def bench(*seeds: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(ROOT / "scripts" / "benchmark_accuracy.py"), "--quick", "--datasets", "music_genre"]
        cmd += ["--features", "audio", "--splits", "canonical", "--models", str(config), "--out_dir", "kept"]
        cmd += ["--seeds", *seeds, "--readme", "README.md"]
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=True)

    def per_seed(done: subprocess.CompletedProcess) -> list[str]:
        return done.stdout.strip().splitlines()[-1].split(" | ")[8].split(", ")

    first = bench("0")
    assert first.stderr.count("RESULT ") == 1 and "kept:" not in first.stderr
    assert not list((tmp_path / "kept" / "results").glob("*.tmp"))  # written whole, then renamed
    more = bench("0", "1")  # seed 0 is kept: only seed 1 trains
    assert more.stderr.count("RESULT ") == 1 and "seed 1" in more.stderr and "kept: 1 of 2 tasks" in more.stderr
    assert per_seed(more)[0] == per_seed(first)[0] and len(per_seed(more)) == 2
    lines = readme.read_text().splitlines()  # the table between the markers is the run's model x split table
    assert lines[:2] == ["# title", "<!-- benchmark_accuracy:begin -->"] and lines[-2:] == [MARKER_END, "end"]
    assert "old table" not in lines and "--seeds 0 1" in lines[2]
    assert re.search(r", commit [0-9a-f]{7}(\+dirty)?, data music_genre_quick.csv sha256 [0-9a-f]{12}\)", lines[2])
    row = more.stdout.strip().splitlines()[-1].split(" | ")  # canonical: test accuracy, then twin-free rows
    assert lines[-3].endswith(f"| {row[4]} | {row[6].rsplit(' (', 1)[0]} |")


def test_a_kept_result_is_keyed_on_the_config_text_the_data_bytes_and_the_seed(tmp_path) -> None:
    from tests.conftest import make_music_genre

    config, csv = tmp_path / "mlp.yaml", tmp_path / "music_genre.csv"
    config.write_text((ROOT / "configs" / "music_genre.yaml").read_text())
    make_music_genre(n=50).to_csv(csv, index=False)
    data = {"dataset": "music_genre", "features": "audio", "split": "canonical", "path": str(csv), "meta_columns": None}
    task = ("net", str(config), data, 0, True)
    key = benchmark.task_key(task)
    assert benchmark.task_key(task) == key and benchmark.task_key(("net", str(config), data, 1, True)) != key
    config.write_text(config.read_text().replace("lr: 0.01", "lr: 0.003"))  # another config: not the kept result
    assert benchmark.task_key(task) != key
    config.write_text((ROOT / "configs" / "music_genre.yaml").read_text())
    make_music_genre(n=51).to_csv(csv, index=False)  # other data in the same file (a later benchmark run)
    benchmark.digest.cache_clear()
    assert benchmark.task_key(task) != key


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_benchmark_refuses_a_readme_without_its_markers_before_training(tmp_path) -> None:
    (tmp_path / "README.md").write_text("# no markers\n")
    cmd = [sys.executable, str(ROOT / "scripts" / "benchmark_accuracy.py"), "--readme", "README.md"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--readme README.md: it needs the lines <!-- benchmark" in done.stderr
    assert (tmp_path / "README.md").read_text() == "# no markers\n" and not done.stdout


def test_readme_table_leads_with_the_song_grouped_split() -> None:
    spec = importlib.util.spec_from_file_location("benchmark_accuracy", ROOT / "scripts" / "benchmark_accuracy.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def row(split: str, model: str, acc: str) -> list[str]:
        return ["music_genre", "audio", split, model, acc, "- (0)", f"{acc}9 (100)", "f1", "1, 2", "3"]

    rows = [row("canonical", "mlp", "1.00 ± 0.10"), row("song", "mlp", "2.00 ± 0.20"), row("artist", "mlp", "3.00")]
    rows += [row("song", "catboost", "4.00 ± 0.40")]  # a model run on one split only
    lines = script.readme_table(rows, "`command` (date)").splitlines()
    assert lines[0] == "`command` (date)" and lines[1] == ""
    assert lines[2] == ("| dataset | features | model | song-grouped split % | artist-grouped split % "
                        "| canonical split % | canonical, twin-free rows % |")  # fmt: skip
    assert lines[3] == "|---|---|---|---|---|---|---|"
    assert lines[4] == "| music_genre | audio | mlp | 2.00 ± 0.20 | 3.00 | 1.00 ± 0.10 | 1.00 ± 0.109 |"
    assert lines[5] == "| music_genre | audio | catboost | 4.00 ± 0.40 | - | - | - |"
    assert script.readme_table(rows[1:2], "h").splitlines()[2:] == [
        "| dataset | features | model | song-grouped split % |", "|---|---|---|---|",
        "| music_genre | audio | mlp | 2.00 ± 0.20 |"]  # fmt: skip
