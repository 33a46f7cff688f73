"""Helpers of the fault suite: run the CLI in-process, expect one-line errors, small filesystems, flipped bits."""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from genre_torch.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str | os.PathLike) -> tuple[int, str, str]:
    """Run `genre-torch ARGV` in-process: exit code, stdout, stderr (Python warnings of the cleaning left out)."""
    capsys.readouterr()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str | os.PathLike) -> str:
    """Run the CLI expecting exit code 2 and exactly one line on stderr; return that line."""
    code, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("genre-torch: error: "), (code, err)
    return lines[0]


def listing(folder: Path) -> list[str]:
    """Every name under `folder`, hidden ones included, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@contextlib.contextmanager
def small_fs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (root only); the test is skipped where mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    except OSError as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """An empty folder this process cannot write into: chmod for a normal user, a read-only tmpfs for root."""
    if os.geteuid() != 0:
        path.mkdir()
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
    else:
        with small_fs(path, "64k", read_only=True):
            yield path


def flip_bit(path: Path, member: str, byte: int = 0, bit: int = 0) -> None:
    """Flip one bit inside a member of a (stored, uncompressed) zip archive such as a torch checkpoint."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    with open(path, "r+b") as fh:
        fh.seek(info.header_offset)
        name_len, extra_len = struct.unpack("<HH", fh.read(30)[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len + byte)
        value = fh.read(1)[0] ^ (1 << bit)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([value]))
