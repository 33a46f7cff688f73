"""Speed benchmark: a plain PyTorch loop vs GenreClassifier + Trainer (standard and fast path), same tensors.

    python scripts/bench_speed.py                       # music_genre: batch = config default, 256, 1024, 4096
    python scripts/bench_speed.py --config configs/spotify_tracks.yaml --batch_sizes 512 16384
    python scripts/bench_speed.py --quick --json out.json   # CI smoke run (tests never assert on timings)
    python scripts/bench_speed.py --gpu_only [--gpu_compile]  # GPU machine: GPU rows and a GPU end-to-end fit
    python scripts/bench_speed.py --startup                 # only: `genre-torch predict` startup beside torch's import

Per batch size, rounds of [plain loop, Lightning's standard path, the fast path (--data.batches_per_step
--group)] run back to back in this process on the same tensors, initial weights, optimiser
(GenreClassifier.configure_optimizers), criterion, shuffle and thread count; the first epoch of each
block is warm-up, the table shows medians of the rest. "train" times the training batches only
(Lightning: epoch start to validation start, every hook included); "epoch" adds the validation pass
(Lightning: also checkpointing, early stopping and TensorBoard logging). The Lightning trainer is
the one `genre-torch fit` builds (GenreCLI with the same config), progress bar off as in non-interactive
runs. CPU time (process_time) is reported beside wall time: on a shared machine it is the steadier one.
--startup measures, each in fresh subprocesses (median of --startup_repeats), `python -c "import torch"`,
`genre-torch predict` on a missing input file (answered before torch is imported) and `genre-torch predict` of
2,000 rows of the config's data with a checkpoint trained for 1 epoch.
Then: end-to-end `genre-torch fit` in a subprocess (to early stop, incl. test) with its startup
(import + data load + preprocessing) measured in its own subprocess, inference rows/s, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from genre_torch.core.data import DATA_DIR_ENV, find_data_file
from genre_torch.core.data.datasets import load_spec
from genre_torch.core.errors import GenreTorchError
from genre_torch.tools.speed import compare, end_to_end, inference

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "music_genre.yaml"), help="dataset config")
    p.add_argument("--batch_sizes", type=int, nargs="+", help="default: the config's, 256, 1024, 4096")
    p.add_argument("--epochs", type=int, default=5, help="measured epochs per block (plus 1 warm-up)")
    p.add_argument("--rounds", type=int, default=2, help="[plain, default, fast] blocks per batch size")
    p.add_argument("--group", type=int, default=64, help="batches per training_step call on the fast path")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both sides; 0 = torch default)")
    p.add_argument("--no_e2e", action="store_true", help="skip the end-to-end `genre-torch fit` run")
    p.add_argument("--gpu_config", default=str(ROOT / "configs" / "spotify_tracks.yaml"), help="GPU rows (if CUDA)")
    p.add_argument("--gpu_batch_sizes", type=int, nargs="+", default=[4096, 16384])
    p.add_argument("--gpu_repeat", type=int, default=10, help="GPU rows train on the training rows repeated N times")
    p.add_argument("--gpu_compile", action="store_true", help="GPU rows also with --model.compile (both sides)")
    p.add_argument("--gpu_only", action="store_true", help="only the GPU rows (and a GPU end-to-end fit)")
    p.add_argument("--startup", action="store_true", help="only the startup of `genre-torch predict` beside torch's")
    p.add_argument("--startup_repeats", type=int, default=3, help="subprocesses per startup measurement")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 round of 2 epochs, default batch only")
    p.add_argument("--json", help="also write the results as JSON to this file ('-' for stdout)")
    args = p.parse_args(argv)
    if args.gpu_only and not torch.cuda.is_available():
        p.error("--gpu_only needs a CUDA GPU and none is visible; drop it for the CPU rows")
    return args


def locate_data(configs: list[str]) -> None:
    """Find each config's data as training does (from here) and export its folder as an absolute
    $GENRE_TORCH_DATA_DIR, so that the end-to-end fits, which run in a scratch folder, find it too."""
    for config in configs:
        data = (yaml.safe_load(Path(config).read_text()) or {}).get("data") or {}
        path = find_data_file(load_spec(data.get("dataset", "music_genre")), data.get("path")).resolve()
        if not data.get("path"):
            os.environ[DATA_DIR_ENV] = str(path.parent)


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return statistics.median(values)


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def training_rows(
    config: str,
    batch_sizes: list[int],
    args: argparse.Namespace,
    workdir: Path,
    gpu_precision: str | None = None,
    compile: bool = False,
) -> tuple[list, Any]:
    """Plain loop vs Lightning's standard path vs the fast path, per batch size: one dict per batch size."""
    rows, cli = [], None
    repeat = args.gpu_repeat if gpu_precision else 1
    for bs in batch_sizes:
        times: dict[str, dict[str, list[float]]] = {}
        for r in range(args.rounds):
            folder = workdir / f"{gpu_precision}{compile}bs{bs}_r{r}"
            out, cli = compare(config, bs, args.epochs + 1, folder, gpu_precision, repeat, compile, args.group)
            for side, values in out.items():
                for key, vals in values.items():  # the first epoch of each block is warm-up
                    times.setdefault(side, {}).setdefault(key, []).extend(
                        vals if key in ("rows", "steps") else vals[1:]
                    )
        n, steps = times["plain"]["rows"][0], times["plain"]["steps"][0]
        row = {"batch_size": bs, "train_rows": int(n), "steps": int(steps), "precision": gpu_precision}
        row.update(compile=compile, group=args.group)
        for side in ("plain", "default", "fast"):
            for key in ("train_wall", "train_cpu", "epoch_wall", "epoch_cpu"):
                row[f"{side}_{key}"] = median(times[side][key])
                if side != "plain":
                    row[f"{side}_ratio_{key}"] = row[f"{side}_{key}"] / row[f"plain_{key}"]
            row[f"{side}_rows_per_s"] = n / row[f"{side}_train_wall"]
            if side != "plain":
                cpu = row[f"{side}_train_cpu"] - row["plain_train_cpu"]
                row[f"{side}_overhead_ms_per_step_cpu"] = 1000 * cpu / steps
            if times[side].get("gpu_util"):  # sampled at the end of each epoch's training batches
                row[f"{side}_gpu_util_pct"] = median(times[side]["gpu_util"])
        rows.append(row)
        print_training([row])
    return rows, cli


COLUMNS = [  # (header, key, format spec); a column is as wide as its header
    ("batch", "batch_size", "d"),
    ("steps", "steps", "d"),
    ("plain rows/s", "plain_rows_per_s", ",.0f"),
    ("default rows/s", "default_rows_per_s", ",.0f"),
    ("fast rows/s", "fast_rows_per_s", ",.0f"),
    ("default ratio", "default_ratio_train_wall", ".3f"),
    ("fast ratio", "fast_ratio_train_wall", ".3f"),
    ("default CPU ratio", "default_ratio_train_cpu", ".3f"),
    ("fast CPU ratio", "fast_ratio_train_cpu", ".3f"),
    ("default epoch ratio", "default_ratio_epoch_wall", ".3f"),
    ("fast epoch ratio", "fast_ratio_epoch_wall", ".3f"),
    ("default ms/step", "default_overhead_ms_per_step_cpu", ".2f"),
    ("fast ms/step", "fast_overhead_ms_per_step_cpu", ".2f"),
]


def print_header() -> None:
    """Column names of the training table."""
    print(" ".join(f"{h:>{max(len(h), 7)}}" for h, _, _ in COLUMNS))


def print_training(rows: list[dict]) -> None:
    """One table line per batch size."""
    for r in rows:
        print(" ".join(f"{r[key]:>{max(len(h), 7)}{spec}}" for h, key, spec in COLUMNS), flush=True)


def startup(config: str, workdir: Path, repeats: int) -> dict[str, Any]:
    """Wall seconds (medians over fresh subprocesses) of importing torch and of `genre-torch predict`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cli = [sys.executable, "-m", "genre_torch.cli"]

    def wall(cmd: list[str], expect: int = 0) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if proc.returncode != expect:
                raise GenreTorchError(f"`{' '.join(cmd[2:])}` exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return median(times)

    fit = [*cli, "fit", "--config", str(Path(config).resolve()), "--trainer.max_epochs", "1"]
    fit += ["--trainer.enable_progress_bar", "false"]
    wall([*fit, "--runs_dir", "runs", "--checkpoints_dir", "ckpts", "--test_after_fit", "false"])
    ckpt = str(next(workdir.glob("ckpts/*/version_0/best-*.ckpt")))
    spec = load_spec(yaml.safe_load(Path(config).read_text())["data"].get("dataset", "music_genre"))
    rows = pd.read_csv(find_data_file(spec), nrows=2000)
    rows.to_csv(workdir / "rows.csv", index=False)
    predict = [*cli, "predict", "--ckpt_path", ckpt, "--output", "out.csv"]
    result = {
        "repeats": repeats,
        "import_torch_s": wall([sys.executable, "-c", "import torch"]),
        "predict_missing_input_s": wall([*predict, "--input", "missing.csv"], expect=2),
        "predict_2000_rows_s": wall([*predict, "--input", "rows.csv"]),
    }
    print(
        f"startup, wall s (median of {repeats} subprocesses, load {os.getloadavg()[0]:.1f}): "
        f"python -c 'import torch' {result['import_torch_s']:.2f} | "
        f"predict, missing input {result['predict_missing_input_s']:.2f} | "
        f"predict of {len(rows):,} rows {result['predict_2000_rows_s']:.2f} "
        f"(= torch's import + {result['predict_2000_rows_s'] - result['import_torch_s']:.2f})"
    )
    return result


def main(argv: list[str] | None = None) -> None:
    """Run every part and print the tables."""
    args = parse_args(argv)
    if args.startup:
        locate_data([args.config])
        with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
            result = startup(args.config, Path(tmp), args.startup_repeats)
        if args.json:
            text = json.dumps(result, indent=2)
            print(text) if args.json == "-" else Path(args.json).write_text(text)
        return
    warnings.filterwarnings("ignore")  # data-cleaning and Lightning notices would break up the tables
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    locate_data([args.gpu_config] if args.gpu_only else [args.config] + [args.gpu_config] * torch.cuda.is_available())
    default_bs = int(yaml.safe_load(Path(args.config).read_text())["data"]["batch_size"])
    batch_sizes = args.batch_sizes or list(dict.fromkeys([default_bs, 256, 1024, 4096]))
    if args.quick:
        args.epochs, args.rounds, batch_sizes = 2, 1, args.batch_sizes or [default_bs]
    result: dict = {
        "config": args.config,
        "default_batch_size": default_bs,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    config = args.gpu_config if args.gpu_only else args.config
    shown = os.path.relpath(config, ROOT) if Path(config).resolve().is_relative_to(ROOT) else config
    print(f"{shown}: {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(f"medians of {args.epochs} epochs x {args.rounds} rounds after 1 warm-up epoch per block")
    print("ratio = Lightning / plain loop, training batches of an epoch (wall); CPU ratio = the same in process CPU")
    print(f"default = Lightning's standard path; fast = --data.batches_per_step {args.group} (core/training/fast.py)")
    print("epoch ratio: whole epochs (validation, checkpoint, logging); ms/step: Lightning CPU overhead per step")
    if not args.gpu_only:
        print_header()
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        workdir = Path(tmp)
        if not args.gpu_only:
            result["cpu_training"], cli = training_rows(args.config, batch_sizes, args, workdir)
        if torch.cuda.is_available():  # GPU rows only where there is one
            print(f"GPU {torch.cuda.get_device_name()}: {args.gpu_config}, data resident on the device")
            print(f"training rows repeated {args.gpu_repeat} times; fp32 matmuls are full fp32 (no TF32)")
            result["gpu_training"] = []
            for compile in (False, True) if args.gpu_compile else (False,):
                for precision in ("32-true", "bf16-mixed"):
                    print(f"precision {precision}" + (", torch.compile (both sides)" if compile else ""))
                    print_header()
                    rows, gpu_cli = training_rows(
                        args.gpu_config, args.gpu_batch_sizes, args, workdir, precision, compile
                    )
                    result["gpu_training"] += rows
                    for row in rows:
                        util = [row.get(f"{s}_gpu_util_pct", float("nan")) for s in ("default", "fast")]
                        print(
                            f"batch {row['batch_size']}: GPU utilisation default {util[0]:.0f} %, fast {util[1]:.0f} %"
                        )
            result["gpu_inference"] = inference(gpu_cli, repeats=1 if args.quick else 5, device="cuda")
            for name, value in result["gpu_inference"].items():
                print(f"GPU inference {name} (fp32): {value:,.0f} rows/s")
            if not args.no_e2e:
                gpu = [str(ROOT / "configs" / "presets" / "gpu.yaml")]
                result["gpu_end_to_end"] = e2e = end_to_end(args.gpu_config, workdir / "gpu_e2e", args.quick, gpu)
                print(
                    f"GPU end to end `{e2e['command']}`: {e2e['wall_s']:.1f} s wall, {e2e['epochs']} epochs, "
                    f"test accuracy {e2e['test_accuracy']}"
                )
        if not args.gpu_only:
            result["inference"] = inference(cli, repeats=1 if args.quick else 5)
            for name, value in result["inference"].items():
                print(f"inference {name}: {value:,.0f} rows/s")
        result["peak_rss_mib_bench"] = peak_rss_mib()
        if not args.no_e2e and not args.gpu_only:
            e2e = end_to_end(args.config, workdir / "e2e", quick=args.quick)
            result["end_to_end"] = e2e
            print(
                f"end to end `genre-torch fit --config {Path(args.config).name}`: {e2e['wall_s']:.1f} s wall "
                f"({e2e['cpu_s']:.1f} s CPU), "
                f"{e2e['epochs']} epochs, test accuracy {e2e['test_accuracy']}, peak RSS {e2e['peak_rss_mib']:.0f} MiB"
            )
            print(
                f"startup (own subprocess): import of torch + Lightning + genre_torch {e2e['import_s']:.2f} s + "
                f"data load and preprocessing "
                f"{e2e['load_s']:.2f} s = {e2e['import_s'] + e2e['load_s']:.2f} s"
            )
    result["load_average_end"] = os.getloadavg()
    print(f"peak RSS of this benchmark process: {result['peak_rss_mib_bench']:.0f} MiB; load {os.getloadavg()}")
    if args.json == "-":
        print(json.dumps(result, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    try:
        main()
    except GenreTorchError as e:  # e.g. no data: the same one line as `genre-torch fit`
        print(f"bench_speed: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
