"""Provenance: every fit records its code, data and machine; checks when a checkpoint is used; `info`; reruns."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genre_torch.cli import main, run_cli
from genre_torch.core.training import provenance
from genre_torch.core.training.provenance import check_against, collect, compare, file_sha256
from tests.conftest import make_music_genre

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "music_genre.yaml")
FAST = ["--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false", "--data.batch_size", "64"]


@dataclass(frozen=True)
class Run:
    root: Path
    data: Path
    args: list[str]
    run_dir: Path
    best: Path
    last: Path
    test_line: str  # as `genre-torch fit` prints it


def git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT / "genre_torch"), *args], capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A 2-epoch fit of music_genre on synthetic data, from a command line whose argv is known."""
    root = tmp_path_factory.mktemp("provenance")
    data = root / "music_genre.csv"
    make_music_genre().to_csv(data, index=False)
    args = ["fit", "--config", CONFIG, "--data.path", str(data), *FAST]
    args += ["--runs_dir", str(root / "runs"), "--checkpoints_dir", str(root / "checkpoints")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        mp.setattr(sys, "argv", ["genre-torch", *args])
        cli = run_cli(args)
    metrics = cli.trainer.callback_metrics
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    line = f"test accuracy: {float(metrics['test/acc']):.4f}  macro-F1: {float(metrics['test/macro_f1']):.4f}"
    return Run(root, data, args, Path(cli.trainer.logger.log_dir), best, best.parent / "last.ckpt", line)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private hash cache: $XDG_CACHE_HOME in tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "genre_torch" / "sha256.json"


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # plain primitives: loadable like this


def test_a_fit_records_every_field_in_its_checkpoints_run_folder_and_tensorboard(run: Run) -> None:
    record = load(run.best)["provenance"]
    assert load(run.last)["provenance"] == record
    assert yaml.safe_load((run.run_dir / "provenance.yaml").read_text()) == record

    diff = git("diff", "HEAD", "--binary", "--no-ext-diff", "--no-color")
    assert record["code"] == {
        "version": importlib.metadata.version("genre_torch"),
        "commit": git("rev-parse", "HEAD").decode().strip(),
        "dirty": bool(diff),
        "diff_sha256": hashlib.sha256(diff).hexdigest() if diff else None,
    }
    assert record["data"] == {
        "path": str(run.data.resolve()),
        "size": run.data.stat().st_size,
        "sha256": hashlib.sha256(run.data.read_bytes()).hexdigest(),
    }
    machine = record["machine"]
    assert machine["python"] == platform.python_version() and machine["torch"] == torch.__version__
    assert machine["pytorch_lightning"] == pl.__version__ and machine["cuda"] == torch.version.cuda
    assert machine["device"].startswith("cpu") and machine["devices"] == 1 and machine["precision"] == "32-true"
    assert record["command"] == ["genre-torch", *run.args] and record["seed"] == 42  # configs/music_genre.yaml's
    assert record["config"] == (run.run_dir / "config.yaml").read_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["created"])

    events = EventAccumulator(str(run.run_dir)).Reload()
    assert "provenance/text_summary" in events.Tags()["tensors"]
    text = events.Tensors("provenance/text_summary")[0].tensor_proto.string_val[0].decode()
    assert record["data"]["sha256"] in text and str(record["code"]["commit"]) in text


def test_the_data_hash_is_cached_by_path_size_and_mtime(tmp_path: Path, cache: Path) -> None:
    data = tmp_path / "songs.csv"
    data.write_text("a,b\n1,2\n")
    assert file_sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest()
    entries = json.loads(cache.read_text())
    entries[str(data.resolve())]["sha256"] = "0" * 64
    cache.write_text(json.dumps(entries))
    assert file_sha256(data) == "0" * 64  # read from the cache, not from the file
    data.write_text("a,b\n3,4\n")  # same size, new mtime: hashed again
    os.utime(data, ns=(1, 2))
    assert file_sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest()
    cache.write_text("{broken")  # a broken cache is rebuilt, never an error
    assert file_sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest()
    assert json.loads(cache.read_text())[str(data.resolve())]["size"] == 8
    assert not [p for p in cache.parent.iterdir() if p.name != cache.name]  # no temporary file left


def test_a_cache_that_cannot_be_written_does_not_stop_a_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    data = tmp_path / "songs.csv"
    data.write_text("a\n1\n")
    assert file_sha256(data) == hashlib.sha256(b"a\n1\n").hexdigest()


def test_without_git_the_commit_fields_are_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        monkeypatch.setattr(provenance, "PACKAGE_DIR", tmp_path)  # not inside a checkout
        provenance.code_record.cache_clear()
        assert provenance.code_record() == {"version": provenance.package_version(), "commit": None,
                                            "dirty": None, "diff_sha256": None}  # fmt: skip
        monkeypatch.setattr(provenance, "PACKAGE_DIR", ROOT / "genre_torch")
        monkeypatch.setenv("PATH", str(tmp_path))  # no git program
        provenance.code_record.cache_clear()
        assert provenance.code_record()["commit"] is None
    finally:
        provenance.code_record.cache_clear()


def test_compare_names_what_differs(tmp_path: Path, cache: Path) -> None:
    data = tmp_path / "music_genre.csv"
    data.write_text("a\n1\n")
    record = collect(data, seed=1)
    assert compare(record, data) == [] and compare(None, data) == []  # no record: an older checkpoint
    now = provenance.code_record()
    if now["commit"] is None:
        pytest.skip("not run from a git checkout")
    other = {**record, "code": {**now, "commit": "f" * 40, "dirty": False}}
    assert compare(other, data) == [f"trained at commit fffffff, this code is {provenance.describe_code(now)}"]
    edited = {**record, "code": {**now, "dirty": True, "diff_sha256": "e" * 64}}
    assert compare(edited, data)[0].endswith("(other uncommitted changes)")  # same commit, another diff
    data.write_text("a\n2\n")
    (notice,) = compare(record, data)
    assert notice.startswith(f"trained on {data.resolve()} (sha256 {record['data']['sha256'][:12]})")
    assert compare(record, None) == []  # no data file given: the code only


def altered(path: Path, out: Path) -> Path:
    """A copy of a checkpoint that says another commit trained it."""
    ckpt = load(path)
    ckpt["provenance"]["code"].update(commit="0" * 40, dirty=False)
    torch.save(ckpt, out)
    return out


def warnings_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if "may not reproduce" in line]


def test_validate_resume_and_predict_warn_in_one_line_when_code_or_data_differ(
    run: Run, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(run.root / "cache"))
    if provenance.code_record()["commit"] is None:
        pytest.skip("not run from a git checkout")
    validate = ["validate", "--config", CONFIG, "--trainer.enable_progress_bar", "false"]
    main([*validate, "--data.path", str(run.data), "--ckpt_path", str(run.best)])
    assert warnings_of(capsys.readouterr().err) == []  # the same code and data

    changed = tmp_path / "music_genre.csv"
    pd.read_csv(run.data).iloc[:-10].to_csv(changed, index=False)
    other = altered(run.best, tmp_path / "other.ckpt")
    main([*validate, "--data.path", str(changed), "--ckpt_path", str(other)])
    (line,) = warnings_of(capsys.readouterr().err)
    assert line.startswith(f"warning: {other} was trained at commit 0000000, this code is ")
    assert f"and trained on {run.data.resolve()} (sha256 " in line and f"now is {changed.resolve()} (sha256" in line

    resumed = altered(run.last, tmp_path / "last.ckpt")
    main([*run.args, "--ckpt_path", str(resumed)])  # max_epochs reached: resumes, then validates and tests
    (line,) = warnings_of(capsys.readouterr().err)
    assert "trained at commit 0000000" in line and "trained on" not in line

    main(["predict", "--ckpt_path", str(other), "--input", str(changed), "--output", str(tmp_path / "p.csv")])
    (line,) = warnings_of(capsys.readouterr().err)  # predict scores new rows: the code only
    assert "trained at commit 0000000" in line and "trained on" not in line


def test_check_against_is_quiet_for_a_checkpoint_without_provenance(run: Run, tmp_path: Path, capsys) -> None:
    ckpt = load(run.best)
    ckpt.pop("provenance")
    assert check_against(ckpt, tmp_path / "anything.csv") is None and capsys.readouterr().err == ""


INFO = """
import sys
from genre_torch.cli import main
try:
    main(["info", "--ckpt_path", sys.argv[1]])
finally:
    print("lightning imported:", any(m.split(".")[0] == "pytorch_lightning" for m in sys.modules))
"""


def info(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", INFO, str(path)], capture_output=True, text=True, env=env, timeout=120)


def test_info_prints_provenance_settings_and_metrics_without_lightning(run: Run) -> None:
    done = info(run.best)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "lightning imported: False"
    record, ckpt = load(run.best)["provenance"], load(run.best)
    text = "\n".join(lines)
    assert lines[0] == f"checkpoint: {run.best}"
    assert f"at {provenance.describe_code(record['code'])}" in lines[1]
    assert f"data file: {run.data.resolve()} (0.1 MB, sha256 {record['data']['sha256']})" in text
    assert "machine: 1 x cpu" in text and f"torch {torch.__version__}" in text and "precision 32-true" in text
    assert f"command: genre-torch fit --config {CONFIG}" in text and "(seed 42)" in text
    assert "model: backbone MLP(hidden_dims=[128, 64, 32], activation=relu" in text and "Adam(lr=0.01" in text
    assert "data: music_genre, 4 genres, 25 encoded features; " in text and "batch_size 64" in text
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint")]
    score = f"best val/loss {float(state['best_model_score']):.4f} ({run.best.name})"
    assert f"metrics: epoch {ckpt['epoch']} (counted from 0), global step {ckpt['global_step']}; {score}" in text


@pytest.mark.parametrize("bad", ["missing", "folder", "csv", "foreign"])
def test_info_refuses_bad_input_in_one_line(run: Run, tmp_path: Path, bad: str) -> None:
    path = {"missing": tmp_path / "none.ckpt", "folder": tmp_path, "csv": run.data, "foreign": tmp_path / "x.ckpt"}[bad]
    if bad == "foreign":
        torch.save({"state_dict": {}}, path)
    done = info(path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    expected = {"missing": "does not exist", "folder": "is a folder", "csv": "is not a readable checkpoint",
                "foreign": "is not a genre_torch checkpoint"}[bad]  # fmt: skip
    assert done.stderr.startswith("genre-torch: error: ") and expected in done.stderr


def test_a_run_reproduces_from_its_folder(run: Run, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(run.root / "cache"))
    main(["fit", "--config", str(run.run_dir / "config.yaml")])  # LightningCLI's config.yaml, as saved
    out = capsys.readouterr().out
    assert run.test_line in out.splitlines()
    again = Path(re.search(r"best checkpoint: (\S+)", out).group(1))
    assert again != run.best and again.name == run.best.name
    first, second = load(run.best), load(again)
    assert all(torch.equal(v, second["state_dict"][k]) for k, v in first["state_dict"].items())


def test_the_data_file_is_found_as_training_finds_it_and_a_folder_hashes_all_its_files(
    data_env: Path, tmp_path: Path, cache: Path
) -> None:
    from genre_torch.core.data import GenreDataModule

    assert provenance.data_file(GenreDataModule("music_genre")) == data_env / "music_genre.csv"  # $GENRE_TORCH_DATA_DIR
    folder = tmp_path / "prepared"
    (folder / "train").mkdir(parents=True)
    (folder / "preprocessing.json").write_text("{}")
    (folder / "train" / "part-0.parquet").write_bytes(b"rows")
    assert provenance.data_file(GenreDataModule("music_genre", path=str(folder))) == folder
    before = provenance.data_record(folder)
    assert before["path"] == str(folder.resolve()) and before["size"] == 6
    (folder / "train" / "part-0.parquet").write_bytes(b"Rows")
    assert provenance.data_record(folder)["sha256"] != before["sha256"]  # any file of the folder counts
