"""The README stays a front page, and every link in it and in docs/ lands inside the repository (or upstream)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_a_front_page() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "../shared" not in text and "PENDING" not in text and "RESULTS_TABLE" not in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_land_in_the_repository(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue  # public upstream pages
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page.name}: {target}"
        if anchor:  # GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{page.name}: {target}"


# Documented commands that this test does not run, each with its reason (matched as a substring of the command)
NOT_RUN = {
    "make install": "creates a virtualenv and installs from the network (CI's .ci/run does it)",
    "make train": "installs and downloads (the fit it runs is the quickstart's first command, run here)",
    "make test": "the test suite itself (CI runs `make test`)",
    "data download": "downloads from the network / Kaggle (tests/test_acquire.py covers it offline)",
    "tensorboard --logdir": "a server that runs until stopped (tests/test_tensorboard.py queries a real one)",
    "optuna-dashboard": "a server that runs until stopped, from an optional package",
    "presets/gpu.yaml": "needs a GPU (tests/test_gpu.py on a GPU machine)",
    "presets/ddp.yaml": "DDP over several devices (tests/test_ddp.py runs 2 CPU processes)",
}
# Appended to a command so that it runs in seconds on the small synthetic data
SHORTER = {
    "genre-torch fit": ["--trainer.max_epochs", "1"],
    "genre-torch tune": ["--trials", "1", "--workers", "1", "--trainer.max_epochs", "1"],
    # its space file fixes the epochs (200, to early stopping: 66 here): 2 optimiser steps end the one cell instead
    "genre-torch sweep": ["--limit", "1", "--workers", "1", "--trainer.max_steps", "2"],
}
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.M | re.S)


def commands(block: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, trailing comments dropped."""
    text = re.sub(r"\\\n\s*", " ", block)
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def script(page: Path) -> tuple[str, list[str]]:
    """The page's bash commands as one script (variables carry over, as in one terminal) and what is left out."""
    lines, left_out = ["set -euo pipefail"], []
    for lang, block in BLOCK.findall(page.read_text()):
        if lang == "python":
            if not block.startswith("# docs/examples/"):  # an excerpt of a file that tests/test_extending.py trains
                lines.append(f"python - <<'PYTHON'\n{block}PYTHON")
            continue
        for command in commands(block):
            reason = next((why for key, why in NOT_RUN.items() if key in command), None)
            if reason is not None:
                left_out.append(f"{command}: {reason}")
                continue
            extra = next((args for key, args in SHORTER.items() if key in command), [])
            extra = [] if "help" in command else extra  # a help text: nothing trains
            lines.append(" ".join([command, *extra]))
    return "\n".join(lines) + "\n", left_out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, warm: dict[str, Path]) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder with the repository's configs and docs, small synthetic data, and `genre-torch` of this checkout.

    `genre-torch` there forks each command from a server that has imported the package (tests/zygote.py): the
    commands run as written, each in its own process, without importing torch and Lightning again each time.
    """
    from tests.conftest import make_music_genre, make_spotify_tracks

    folder = tmp_path_factory.mktemp("docs")
    for name in ("configs", "docs"):
        (folder / name).symlink_to(ROOT / name)
    (folder / "data").mkdir()
    make_music_genre().to_csv(folder / "data" / "music_genre.csv.gz", index=False)  # as downloaded
    make_spotify_tracks().to_csv(folder / "data" / "spotify_tracks.csv.gz", index=False)
    make_music_genre(n=50, seed=7).drop(columns=["music_genre"]).to_csv(folder / "songs.csv", index=False)
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "genre-torch").symlink_to(warm["genre-torch"])
    # this checkout first on the path, a command's own PYTHONPATH kept after it
    pythonpath = f"{ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"
    (bin_dir / "python").write_text(f'#!/bin/sh\nPYTHONPATH="{pythonpath}" exec {sys.executable} "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GENRE_TORCH_DATA_DIR": ""}
    env.pop("GENRE_TORCH_DATA_DIR")  # ./data of the workspace, as in a fresh clone
    yield folder, env


@pytest.mark.slow
@pytest.mark.parametrize("page", ["README.md", "docs/guide.md"])
def test_every_documented_command_runs_as_written(workspace: tuple[Path, dict[str, str]], page: str) -> None:
    folder, env = workspace
    text, left_out = script(ROOT / page)
    assert all(": " in line for line in left_out)
    proc = subprocess.run(["bash", "-c", text], cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{page}: a command failed\n{text}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_the_docs_script_keeps_commands_and_leaves_out_only_listed_ones() -> None:
    text, left_out = script(ROOT / "README.md")
    assert "genre-torch fit --config configs/music_genre.yaml --trainer.max_epochs 1" in text
    assert "genre-torch predict --ckpt_path $CKPT --input music_genre --output predictions.csv" in text
    assert "load_predictor" in text and "class GatedMLP" not in text
    assert any(line.startswith("tensorboard --logdir runs/music_genre") for line in left_out)
    assert not any("genre-torch predict" in line or "genre-torch export" in line for line in left_out)


def test_the_workspaces_genre_torch_reports_what_the_command_reports(workspace: tuple[Path, dict[str, str]]) -> None:
    """The forked `genre-torch` of the docs test: a failing command fails it, with the command's own words."""
    folder, env = workspace
    bad = subprocess.run(["bash", "-c", "genre-torch fit --no_such_option 1"], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("genre-torch: error: ") and not bad.stdout, bad.stderr
    ok = subprocess.run(["bash", "-c", "genre-torch --help"], cwd=folder, env=env,
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.startswith("usage: genre-torch SUBCOMMAND"), ok.stderr
