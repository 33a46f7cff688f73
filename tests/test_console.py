"""First contact: the top-level help lists everything at once; a fit's console output is short and actionable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "music_genre.yaml")
SUBCOMMANDS = ["fit", "validate", "test", "predict", "export", "info", "importance", "data", "prepare", "tune", "sweep"]


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`genre-torch ARGS` in a subprocess, as a user runs it."""
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "genre_torch.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_help_lists_every_subcommand_without_importing_the_heavy_stack(tmp_path) -> None:
    code = "import sys; from genre_torch import cli\ntry: cli.main(['--help'])\nexcept SystemExit: pass\n"
    code += "print('HEAVY', sorted(m for m in ('torch', 'pandas', 'pytorch_lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    listed = re.findall(r"^  (\w+)\s{2,}\S", out, re.M)
    assert set(SUBCOMMANDS) <= set(listed) and "HEAVY []" in out
    bare = run([], tmp_path)
    assert bare.returncode == 2 and all(f"  {name} " in bare.stdout for name in SUBCOMMANDS)


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_a_fit_prints_epochs_summary_and_real_warnings_only(data_env) -> None:
    done = run(["fit", "--config", CONFIG, "--trainer.max_epochs", "3", "--data.batch_size", "64"], Path.cwd())
    assert done.returncode == 0, done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    expected = (r"^epoch [123]/3  train/loss ", r"^best checkpoint: ", r"^test accuracy: ", r"^curves: tensorboard ",
                r"^warning: music_genre: column \w+: \d+ value")  # fmt: skip
    strays = [line for line in lines if not any(re.match(p, line) for p in expected)]
    assert not strays, strays
    assert sum(line.startswith("epoch ") for line in lines) == 3 and len(lines) <= 12
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == len(set(warnings))  # each once


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_warnings_from_files_named_lightning_are_one_line_in_our_words(data_env) -> None:
    """Lightning replaces warnings.formatwarning when it is imported: `path:line: message` for any file whose path
    holds "lightning", such as core/training/lightning_cli.py, which warns about a backbone's inherited settings."""
    config = Path("realmlp.yaml")
    config.write_text("model:\n  backbone:\n    class_path: genre_torch.core.models.realmlp.RealMLP\n")
    done = run(["fit", "--config", CONFIG, "--config", str(config), "--trainer.max_epochs", "1"], Path.cwd())
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    ours = [line for line in lines if line.startswith("warning: the config's backbone RealMLP keeps ")]
    assert len(ours) == 1 and "activation='relu'" in ours[0]
    assert all(line.startswith("warning: ") for line in lines), lines


def test_an_unknown_subcommand_is_one_line(tmp_path) -> None:
    done = run(["fitt"], tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "unknown subcommand 'fitt'" in done.stderr


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_a_configuration_error_is_one_line_with_a_pointer_to_help(data_env) -> None:
    done = run(["fit", "--config", CONFIG, "--model.lrr", "0.1"], Path.cwd())
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--model.lrr" in done.stderr and "see `genre-torch fit --help`" in done.stderr


def test_tool_help_and_usage_errors_do_not_import_the_heavy_stack() -> None:
    code = "import sys\nfrom genre_torch import cli\n"
    code += "for argv in (['predict', '--help'], ['export', '--help'], ['importance', '-h'], ['data', '--help'],\n"
    code += "             ['prepare', '--help'], ['tune', '--help'], ['sweep', '--help'],\n"
    code += "             ['predict', '--ckpt_path', 'x']):\n"
    code += "    try: cli.main(argv)\n    except SystemExit as e: print('EXIT', e.code)\n"
    code += "print('HEAVY', sorted(m for m in ('torch', 'pandas', 'pytorch_lightning') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.count("EXIT 0") == 7 and "EXIT 2" in done.stdout and "HEAVY []" in done.stdout
    assert "the following arguments are required: --input, --output" in done.stderr
    for flag in re.findall(r"--[a-z][\w.]*", done.stdout):  # one flag style: LightningCLI's underscores
        assert "-" not in flag[2:], flag


def test_missing_files_are_answered_before_torch_is_imported(tmp_path) -> None:
    (tmp_path / "fake.ckpt").write_bytes(b"")
    (tmp_path / "rows.csv").write_text("a\n1\n")
    cases = {
        "checkpoint nope.ckpt does not exist": ["predict", "--ckpt_path", "nope.ckpt", "--input", "rows.csv"],
        "input file nope.csv does not exist": ["predict", "--ckpt_path", "fake.ckpt", "--input", "nope.csv"],
        "folder no of the output": ["predict", "--ckpt_path", "fake.ckpt", "--input", "rows.csv", "--output", "no/p"],
        "File name too long": ["predict", "--ckpt_path", "fake.ckpt", "--input", "rows.csv", "--output", "a" * 300],
        ". is a folder": ["export", "--ckpt_path", ".", "--format", "onnx", "--output", "m.onnx"],
        "data file no.csv does not exist": ["importance", "--ckpt_path", "fake.ckpt", "--data.path", "no.csv"],
    }
    code = "import sys\nfrom genre_torch import cli\n"
    for argv in cases.values():
        argv = argv if "--output" in argv or argv[0] != "predict" else [*argv, "--output", "p.csv"]
        code += f"try: cli.main({argv!r})\nexcept SystemExit as e: print('EXIT', e.code)\n"
    code += "print('HEAVY', sorted(m for m in ('torch', 'pandas', 'pytorch_lightning') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.stdout.count("EXIT 2") == len(cases) and "HEAVY []" in done.stdout, done.stdout + done.stderr
    errors = done.stderr.splitlines()
    assert len(errors) == len(cases) and all(message in line for message, line in zip(cases, errors, strict=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.ckpt", "rows.csv"]


def test_data_tune_and_sweep_have_their_own_help_paragraphs() -> None:
    code = "from genre_torch import cli\n"
    for argv in (["data", "download", "-h"], ["data", "check", "-h"], ["tune", "-h"], ["sweep", "-h"]):
        code += f"try: cli.main({argv!r})\nexcept SystemExit: print('@@@')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    download, check, tune, sweep = (" ".join(part.split()) for part in done.stdout.split("@@@")[:4])
    assert "verify its sha256" in download and "Kaggle" in download
    assert "without training" in check and "TARGET is a dataset name" in check
    assert "TPE" in tune and "every combination" not in tune
    assert "every combination" in sweep and "TPE" not in sweep


@pytest.mark.slow  # over 5 s: left out of `make test-fast` (`make test` runs it)
def test_a_sweep_in_one_process_is_as_quiet_as_fit(data_env, tmp_path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("model.backbone.hidden_dims: {choices: [[16], [32]]}\n")
    args = ["sweep", "--config", CONFIG, "--space", str(space), "--runs_dir", str(tmp_path / "runs")]
    done = run([*args, "--trainer.max_epochs", "1", "--data.batch_size", "64"], Path.cwd())
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "GPU available" not in out and "litlogger" not in out, out  # Lightning's banners stay off in trials
