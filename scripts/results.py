"""Print the README results table: each dataset config trained as it says (then tested once), over several seeds.

python scripts/results.py [--seeds 0 1 2] [--configs configs/music_genre.yaml ...]
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from genre_torch.cli import quiet_console, run_cli
from genre_torch.core.training.provenance import code_record, data_file, data_record, describe_code, stamp

ROOT = Path(__file__).resolve().parents[1]


def train(config: Path, seed: int, workdir: str) -> dict[str, Any]:
    """Fit one config with one seed; return test metrics, epochs and wall seconds."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # epoch lines to stderr: stdout is the table
        cli = run_cli(
            [
                "fit",
                "--config",
                str(config),
                "--seed_everything",
                str(seed),
                "--trainer.enable_progress_bar",
                "false",
                "--runs_dir",
                f"{workdir}/runs",
                "--checkpoints_dir",
                f"{workdir}/checkpoints",
            ]
        )
    metrics = cli.trainer.callback_metrics
    file = data_record(data_file(cli.datamodule))
    return {
        "data": (Path(file["path"]).name, file["sha256"]) if file else ("unknown", ""),
        "acc": float(metrics["test/acc"]),
        "f1": float(metrics["test/macro_f1"]),
        "epochs": cli.trainer.current_epoch,
        "seconds": time.perf_counter() - start,
    }


def mean_std(values: list[float], scale: float = 100.0) -> str:
    """'mean ± std' of a list, scaled (percent by default)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.mean(values):.2f} ± {scale * std:.2f}"


def main() -> None:
    """Run every config over every seed and print one markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configs",
        nargs="+",
        type=Path,
        default=[ROOT / "configs" / "music_genre.yaml", ROOT / "configs" / "spotify_tracks.yaml"],
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    quiet_console()  # the epoch lines and real warnings only, as `genre-torch fit` prints them
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        for config in args.configs:
            runs = [train(config, seed, workdir) for seed in args.seeds]
            data.update(r["data"] for r in runs)
            acc, f1 = [r["acc"] for r in runs], [r["f1"] for r in runs]
            per_seed = ", ".join(f"{100 * a:.2f}" for a in acc)
            epochs = statistics.mean(r["epochs"] for r in runs)
            seconds = statistics.mean(r["seconds"] for r in runs)
            cells = [config.stem, "audio", mean_std(acc), mean_std(f1), per_seed, f"{epochs:.0f}", f"{seconds:.0f}"]
            rows.append("| " + " | ".join(cells) + " |")
    command = shlex.join(["python", "scripts/results.py", *sys.argv[1:]])
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    split = "canonical split (test 20 %, seed 42; validation 10 % of the rest)"
    at = stamp([describe_code(code_record())], data)  # the commit and data files the numbers were measured at
    print(f"\n`{command}` ({date}, {at}); seeds {args.seeds}; {split}\n")
    print("| config | features | test accuracy % | macro-F1 % | per seed | epochs | seconds |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
