"""Benchmark of `genre-torch sweep`: the seeds' study on N workers, and N workers / 1 worker throughput.

python scripts/bench_search.py [--config configs/music_genre.yaml] [--space configs/spaces/seeds_study.yaml]
    [--workers 2] [--subset 21] [--full_timeout S] [--out_dir DIR] [--gpu] [--gpu_workers 1 2 4 8] [--quick]
    [any --trainer.* --model.* --data.* fit option, fixed for every training]

In one run, side by side: the subset (the first --subset cells of the grid; in seeds_study.yaml seed 0, relu,
every depth and width) with 1 worker and with --workers, then the whole grid with --workers (every cell
trained to early stop; --full_timeout S: no new training after S seconds, and the row says how many cells
finished; 0 skips it), each a fresh study under --out_dir (default: a new temporary folder). --gpu adds the
subset on the GPU with each of --gpu_workers processes (trainings/hour, mean GPU utilisation read from NVML).
Prints markdown with its command and date, then the sweep's summary. --quick: a seconds-long smoke run.
--subset 0 skips the throughput comparison. After the whole grid, its arithmetic floor: what the nn.Linear layers
alone must compute (cells left unfinished projected from the finished seeds of the same configuration), divided
by this machine's single-thread matrix-multiply rate measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(
    name: str, workers: int, limit: int | None, args: argparse.Namespace, extra: list[str], timeout: float | None = None
) -> dict:
    """Run one fresh `genre-torch sweep` as a subprocess; its wall time and finished cells."""
    runs = args.out_dir / "runs"
    cmd = [sys.executable, "-m", "genre_torch.cli", "sweep", "--config", args.config, "--space", args.space]
    cmd += ["--study", name, "--workers", str(workers), *(["--limit", str(limit)] if limit else [])]
    cmd += ["--timeout", str(timeout)] if timeout else []
    cmd += ["--runs_dir", str(runs), *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    with open(args.out_dir / f"{name}.log", "w") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench_search: {shlex.join(cmd)} failed (exit {done.returncode}); see {log.name}")
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{runs / name / 'study.db'}")
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    cells = len({t.user_attrs["cell"] for t in done if "cell" in t.user_attrs})
    summary = (runs / name / "summary.md").read_text()
    return {"name": name, "workers": workers, "cells": cells, "wall": wall, "summary": summary, "study": study}


def matmul_rate() -> float:
    """FLOP/s of one CPU thread on a 512 x 1024 by 1024 x 1024 float32 product (a wide layer's batch), best of 5."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(512, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * 512 * 1024 * 1024 / best


def arithmetic_floor(full: dict, grid: list[dict]) -> str:
    """The grid's nn.Linear arithmetic over this machine's measured matmul rate, as a floor on its wall time."""
    import optuna

    from genre_torch.tools.search_summary import SEED

    done = {}
    for t in full["study"].get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if "cell" in t.user_attrs and "dense_flops" in t.user_attrs:
            done.setdefault(t.user_attrs["cell"], t)

    def config(params: dict) -> str:
        return repr(sorted((k, v) for k, v in params.items() if k != SEED))

    by_config: dict[str, list[float]] = {}
    for t in done.values():
        by_config.setdefault(config(t.params), []).append(t.user_attrs["dense_flops"])
    finished = sum(t.user_attrs["dense_flops"] for t in done.values())
    left = [c for i, c in enumerate(grid) if i not in done]
    projected = [sum(by_config[config(c)]) / len(by_config[config(c)]) for c in left if config(c) in by_config]
    rate, workers = matmul_rate(), full["workers"]

    def minutes(flops: float) -> float:
        return flops / rate / workers / 60

    seconds = sum(t.user_attrs["seconds"] for t in done.values())
    text = (
        f"Arithmetic floor: the nn.Linear layers of the {len(done)} finished trainings did {finished / 1e12:.1f} "
        f"TFLOP (forward on training and validation rows, weight gradients; input gradients and everything else "
        f"left out). This machine multiplies matrices at {rate / 1e9:.1f} GFLOP/s on one thread (a 512 x 1024 by "
        f"1024 x 1024 float32 product, measured in this run), so that alone needs {minutes(finished):.1f} min of "
        f"{workers} workers; the trainings took {seconds / 60 / workers:.1f} min of {workers} workers in all."
    )
    if left:
        text += (
            f" The {len(left)} unfinished cells, each counted as the mean of its configuration's finished seeds "
            f"({len(left) - len(projected)} without one count 0), bring the whole grid's floor to "
            f"{minutes(finished + sum(projected)):.1f} min."
        )
    return text + "\n"


def gpu_utilisation(stop: threading.Event, samples: list[float]) -> None:
    """Sample the GPU's utilisation (%) every half second until stopped (NVML through torch)."""
    import torch

    while not stop.wait(0.5):
        try:
            samples.append(float(torch.cuda.utilization()))
        except Exception:  # no NVML binding (nvidia-ml-py): no samples
            return


def row(label: str, device: str, r: dict, util: str = "") -> str:
    rate = 3600 * r["cells"] / r["wall"]
    return f"| {label} | {device} | {r['workers']} | {r['cells']} | {r['wall']:.1f} | {rate:.0f} | {util} |"


def main() -> None:
    """Run the benchmark and print the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "music_genre.yaml"))
    parser.add_argument("--space", default=str(ROOT / "configs" / "spaces" / "seeds_study.yaml"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subset", type=int, default=21, help="cells of the throughput comparison")
    parser.add_argument(
        "--full_timeout", type=float, help="seconds after which the whole grid starts no new cell (0: skip the grid)"
    )
    parser.add_argument("--out_dir", type=Path, default=None, help="a new or empty folder (default: a temporary one)")
    parser.add_argument("--gpu", action="store_true", help="add the subset on the GPU with --gpu_workers processes")
    parser.add_argument("--gpu_workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--quick", action="store_true", help="2-cell subset, 4-cell grid, 10 steps each (a smoke test)")
    args, extra = parser.parse_known_args()
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            parser.error("--gpu needs a CUDA GPU and none is available (the CPU rows run without --gpu)")
    if args.out_dir is not None and args.out_dir.exists() and any(args.out_dir.iterdir()):
        parser.error(f"--out_dir {args.out_dir} is not empty: a benchmark needs fresh studies")
    args.out_dir = (args.out_dir or Path(tempfile.mkdtemp(prefix="bench_search_"))).resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    full_limit = None
    if args.quick:
        debug = ["--config", str(ROOT / "configs" / "presets" / "debug.yaml"), "--trainer.max_steps", "10"]
        args.subset, full_limit, extra = 2, 4, [*debug, *extra]  # 2 epochs of 5 batches (the space fixes max_epochs)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    one = many = None
    if args.subset:
        one = sweep("subset_1", 1, args.subset, args, extra)
        many = sweep(f"subset_{args.workers}", args.workers, args.subset, args, extra)
    full = None
    if args.full_timeout != 0:
        full = sweep(f"full_{args.workers}", args.workers, full_limit, args, extra, args.full_timeout)
    from genre_torch.tools.search_space import SearchSpace

    cells = SearchSpace.load(args.space).grid()[:full_limit]
    grid = len(cells)
    gpu_rows = []
    for n in args.gpu_workers if args.gpu else []:
        stop, samples = threading.Event(), []
        sampler = threading.Thread(target=gpu_utilisation, args=(stop, samples), daemon=True)
        sampler.start()
        r = sweep(f"gpu_subset_{n}", n, args.subset, args, ["--trainer.accelerator", "gpu", *extra])
        stop.set()
        sampler.join()
        util = f"{sum(samples) / len(samples):.0f}" if samples else "n/a (no NVML)"
        gpu_rows.append(row(f"subset (first {args.subset} cells)", "gpu", r, util))

    print("## Search benchmark: genre-torch sweep\n")
    print(f"`{shlex.join(['python', 'scripts/bench_search.py', *sys.argv[1:]])}`, {date}, on {platform.node()}: "
          f"{os.cpu_count()} CPU cores; studies and logs in {args.out_dir}\n")  # fmt: skip
    print("| run | device | workers | trainings | wall s | trainings/hour | GPU util % |")
    print("|---|---|---|---|---|---|---|")
    if one and many:
        print(row(f"subset (first {args.subset} cells)", "cpu", one))
        print(row(f"subset (first {args.subset} cells)", "cpu", many))
    else:
        print("| subset | not run (--subset 0) | | | | | |")
    if full is None:
        print("| full grid | not run (--full_timeout 0) | | | | | |")
    else:
        print(row(f"full grid ({full['cells']} of {grid} cells)", "cpu", full))
    print("\n".join(gpu_rows) if gpu_rows else "| GPU rows | not measured (no --gpu) | | | | | |")
    if one and many:
        ratio = (many["cells"] / many["wall"]) / (one["cells"] / one["wall"])
        print(f"\nThroughput {args.workers} workers / 1 worker on the subset: {ratio:.2f}x.")
    if full is None:
        print(f"\n{many['summary']}" if many else "", end="")
        return
    left = grid - full["cells"]
    minutes = f"{full['wall'] / 60:.1f} min"
    full_text = f"had {left} cells left after {minutes}" if left else f"took {minutes}"
    print(f"\nThe full grid {full_text} with {args.workers} workers.\n")
    print(arithmetic_floor(full, cells))
    print(full["summary"], end="")


if __name__ == "__main__":
    main()
