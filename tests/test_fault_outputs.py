"""Fault suite (issue 13), output side of predict, export, prepare and importance: bad --output paths, read-only
and full filesystems, a SIGKILL-ed predict's temporary file (checkpoint writes: test_safe_files.py)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import make_music_genre
from tests.fault_tools import listing, one_line_error, read_only_folder, run, small_fs
from tests.trained import trained

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
BAD_OUTPUTS = ["folder", "symlink", "symlink_to_input", "fifo", "input", "input_respelled", "hardlink_to_input"]


def bad_output(tmp_path: Path, case: str, source: Path) -> str:
    """Set up an --output of the given kind in tmp_path (which holds `source` and other.txt)."""
    out = tmp_path / "out"
    if case == "folder":
        out.mkdir()
    elif case == "symlink":
        out.symlink_to(tmp_path / "other.txt")
    elif case == "symlink_to_input":
        out.symlink_to(source)
    elif case == "fifo":
        os.mkfifo(out)
    elif case == "hardlink_to_input":
        os.link(source, out)
    elif case == "input_respelled":
        (tmp_path / "alias").symlink_to(tmp_path)
        return str(tmp_path / "alias" / "." / source.name)
    else:
        return str(source)
    return str(out)


@pytest.mark.parametrize("case", BAD_OUTPUTS)
def test_predict_refuses_a_bad_output(capsys, tmp_path, monkeypatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "in.csv"
    shutil.copy(trained("music_genre").test_rows, source)
    (tmp_path / "other.txt").write_text("keep me\n")
    output = bad_output(tmp_path, case, source)
    before, data = listing(tmp_path), source.read_bytes()
    err = one_line_error(
        capsys, "predict", "--ckpt_path", trained("music_genre").ckpt, "--input", "in.csv", "--output", output
    )
    expected = {"folder": "is a folder", "symlink": "symbolic link", "symlink_to_input": "symbolic link"}
    expected |= {"fifo": "not a regular file", "hardlink_to_input": "is the input"}
    assert expected.get(case, "is the input in.csv; write the output to another file") in err
    assert (
        listing(tmp_path) == before
        and source.read_bytes() == data
        and (tmp_path / "other.txt").read_text() == "keep me\n"
    )


@pytest.mark.parametrize("case", ["folder", "symlink", "fifo", "input", "input_respelled"])
def test_export_refuses_a_bad_output(capsys, tmp_path, case: str) -> None:
    ckpt = tmp_path / "m.ckpt"
    shutil.copy(trained("music_genre").ckpt, ckpt)
    (tmp_path / "other.txt").write_text("keep me\n")
    output = bad_output(tmp_path, case, ckpt)
    before, data = listing(tmp_path), ckpt.read_bytes()
    err = one_line_error(capsys, "export", "--ckpt_path", ckpt, "--format", "torchscript", "--output", output)
    assert any(s in err for s in ("is a folder", "symbolic link", "not a regular file", "is the input"))
    assert listing(tmp_path) == before and ckpt.read_bytes() == data


def test_read_only_folder(capsys, tmp_path) -> None:
    run_ = trained("music_genre")
    with read_only_folder(tmp_path / "ro") as ro:
        err = one_line_error(
            capsys, "predict", "--ckpt_path", run_.ckpt, "--input", run_.test_rows, "--output", ro / "p.csv"
        )
        assert f"cannot write {ro / 'p.csv'}: " in err and "choose a writable folder" in err
        err = one_line_error(capsys, "export", "--ckpt_path", run_.ckpt, "--format", "onnx", "--output", ro / "m.onnx")
        assert "cannot write" in err
        assert listing(ro) == []


def test_disk_full_keeps_the_previous_output(capsys, tmp_path, monkeypatch) -> None:
    """Runs everywhere: the data reach the disk only at fsync (as on NFS or with delayed allocation) and fail."""
    run_ = trained("music_genre")
    (tmp_path / "p.csv").write_text("previous\n")

    def full(fd: int) -> None:
        raise ENOSPC

    monkeypatch.setattr(os, "fsync", full)
    err = one_line_error(
        capsys, "predict", "--ckpt_path", run_.ckpt, "--input", run_.test_rows, "--output", tmp_path / "p.csv"
    )
    assert "No space left on device; free some space there or write elsewhere" in err
    err = one_line_error(
        capsys, "export", "--ckpt_path", run_.ckpt, "--format", "onnx", "--output", tmp_path / "m.onnx"
    )
    assert "No space left on device" in err
    assert listing(tmp_path) == ["p.csv"] and (tmp_path / "p.csv").read_text() == "previous\n"


def test_disk_full_on_a_small_filesystem(capsys, tmp_path) -> None:
    make_music_genre(n=3000).to_csv(tmp_path / "in.csv", index=False)  # about 450 KB of predictions
    with small_fs(tmp_path / "small", "64k") as small:
        ckpt = trained("music_genre").ckpt
        err = one_line_error(
            capsys, "predict", "--ckpt_path", ckpt, "--input", tmp_path / "in.csv", "--output", small / "p.csv"
        )
        assert "No space left on device" in err
        assert listing(small) == []


@pytest.mark.slow
def test_a_killed_predict_leaves_a_temporary_file_the_next_run_removes(capsys, tmp_path) -> None:
    make_music_genre(n=50_000).to_csv(tmp_path / "big.csv", index=False)  # 50 chunks: killed after the first
    ckpt = trained("music_genre").ckpt
    cmd = [sys.executable, "-m", "genre_torch.cli", "predict", "--ckpt_path", str(ckpt), "--input", "big.csv"]
    proc = subprocess.Popen([*cmd, "--output", "p.csv", "--chunk_size", "1000"], cwd=tmp_path, env=dict(os.environ))
    deadline = time.monotonic() + 120
    while not [p for p in tmp_path.glob(".p.csv.*.tmp") if p.stat().st_size > 100_000] and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [p.name for p in tmp_path.glob(".p.csv.*.tmp")] != [] and not (tmp_path / "p.csv").exists()
    make_music_genre(n=20).to_csv(tmp_path / "small.csv", index=False)
    code, _, _ = run(
        capsys, "predict", "--ckpt_path", ckpt, "--input", tmp_path / "small.csv", "--output", tmp_path / "p.csv"
    )
    assert code == 0 and listing(tmp_path) == ["big.csv", "p.csv", "small.csv"]


def test_prepare_overwrite_replaces_only_a_prepared_folder(capsys, tmp_path) -> None:
    make_music_genre().to_csv(tmp_path / "mg.csv", index=False)
    prep = ["prepare", "--dataset", "music_genre", "--data.path", tmp_path / "mg.csv", "--overwrite", "--output"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me\n")
    (tmp_path / "file.txt").write_text("keep me too\n")
    for output in (tmp_path / "mine", tmp_path / "file.txt", tmp_path):
        assert "is not a prepared folder" in one_line_error(capsys, *prep, output)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me\n"
    assert (tmp_path / "file.txt").read_text() == "keep me too\n"
    assert run(capsys, *prep, tmp_path / "p")[0] == 0
    first = (tmp_path / "p" / "preprocessing.json").read_text()
    assert run(capsys, *prep, tmp_path / "p")[0] == 0  # a prepared folder is replaced
    shutil.copy(tmp_path / "mg.csv", tmp_path / "p" / "mg.csv")
    err = one_line_error(
        capsys,
        "prepare",
        "--dataset",
        "music_genre",
        "--data.path",
        tmp_path / "p" / "mg.csv",
        "--overwrite",
        "--output",
        tmp_path / "p",
    )
    assert "holds the input" in err
    assert listing(tmp_path) == ["file.txt", "mg.csv", "mine", "mine/notes.txt", *listing_of(tmp_path / "p", "p")]
    assert first.split('"seconds"')[0] == (tmp_path / "p" / "preprocessing.json").read_text().split('"seconds"')[0]


def listing_of(folder: Path, prefix: str) -> list[str]:
    return [prefix, *(f"{prefix}/{name}" for name in listing(folder))]


def test_prepare_write_errors_are_one_line(capsys, tmp_path, monkeypatch) -> None:
    make_music_genre().to_csv(tmp_path / "mg.csv", index=False)
    prep = ["prepare", "--dataset", "music_genre", "--data.path", tmp_path / "mg.csv", "--output"]
    with read_only_folder(tmp_path / "ro") as ro:
        assert "choose a writable folder" in one_line_error(capsys, *prep, ro / "p")
        assert listing(ro) == []
    real = Path.write_text

    def full(self: Path, *args, **kwargs) -> int:
        if self.name == "preprocessing.json":
            raise ENOSPC
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert "No space left on device" in one_line_error(capsys, *prep, tmp_path / "q")
    assert not (tmp_path / "q").exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_gz_output_is_gzip_and_importance_write_errors_are_one_line(capsys, tmp_path) -> None:
    run_ = trained("music_genre")
    code, _, _ = run(
        capsys, "predict", "--ckpt_path", run_.ckpt, "--input", run_.test_rows, "--output", tmp_path / "p.csv.gz"
    )
    assert code == 0 and len(pd.read_csv(tmp_path / "p.csv.gz")) == len(pd.read_csv(run_.test_rows))  # was plain text
    (tmp_path / "runs").write_text("a file, not a folder\n")
    args = [
        "importance",
        "--ckpt_path",
        run_.ckpt,
        "--data.path",
        run_.data,
        "--repeats",
        "1",
        "--runs_dir",
        tmp_path / "runs",
    ]
    assert "cannot write" in one_line_error(capsys, *args)
