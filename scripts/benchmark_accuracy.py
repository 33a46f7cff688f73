"""Accuracy benchmark: dataset x feature set x model over seeds -> markdown table (test acc, macro-F1, seconds).

python scripts/benchmark_accuracy.py [--datasets music_genre spotify_tracks] [--features audio audio+meta]
    [--models hgb best] [--seeds 0 1 2] [--ensemble] [--split canonical|artist] [--jobs 1] [--quick]

Models: `hgb` is scikit-learn HistGradientBoosting on exactly the encoded features the networks see
(genre_torch/trees.py: stops on validation accuracy, scored at its best validation round); `mlp` is
configs/<dataset>.yaml (the plain MLP); `best` is configs/<dataset>_<audio|meta>_best.yaml; any
other name is a config path. Networks are trained with `genre-torch fit --config ...
--seed_everything SEED --data.features F` (early stopping and checkpoint choice on validation only;
the best checkpoint is tested once). --ensemble adds a row per network: the mean class probability
of its seed checkpoints, scored once on test. --quick trains on a stratified sample of 3,000 rows
for 2 epochs (CI smoke test; its numbers mean nothing). --jobs N trains N models at a time in worker
processes, each single-threaded (train seconds then include the contention; compare them only within
one table).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from genre_torch.cli import run_cli
from genre_torch.core.data import GenreDataModule, find_data_file, read_csv
from genre_torch.core.datasets import get_spec
from genre_torch.core.module import GenreClassifier
from genre_torch.core.preprocessing import Preprocessor
from genre_torch.tools.trees import fit_predict_hgb, hgb_model

ROOT = Path(__file__).resolve().parents[1]


def config_for(model: str, dataset: str, features: str) -> Path:
    """The YAML behind a model name."""
    if model == "mlp":
        return ROOT / "configs" / f"{dataset}.yaml"
    if model == "best":
        return ROOT / "configs" / f"{dataset}_{'audio' if features == 'audio' else 'meta'}_best.yaml"
    return Path(model)


def scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Accuracy and macro-F1."""
    return accuracy_score(y, pred), f1_score(y, pred, average="macro")


def run_hgb(data: dict, seed: int, quick: bool) -> dict:
    """HistGradientBoosting on the same encoded features, early-stopped on the validation split."""
    dm = GenreDataModule(**data).load()
    (xt, yt), (xv, yv), (xs, ys) = (dm.tensors[s] for s in ("train", "val", "test"))
    start = time.perf_counter()
    x = {s: t.numpy() for s, t in (("train", xt), ("val", xv), ("test", xs))}
    predicted, note = fit_predict_hgb(
        hgb_model(20 if quick else 300, seed), x["train"], yt.numpy(), x["val"], yv.numpy(), x["test"]
    )
    seconds = time.perf_counter() - start
    print(f"HistGradientBoosting {data['dataset']} {data['features']}: {note}", flush=True)
    acc, f1 = scores(ys.numpy(), predicted)
    return {"acc": acc, "f1": f1, "seconds": seconds, "best": None}


def run_net(config: Path, data: dict, seed: int, workdir: str, quick: bool) -> dict:
    """`genre-torch fit` one config with one seed; test metrics of its best (validation) checkpoint."""
    args = ["fit", "--config", str(config), "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false"]
    args += [f"--data.{k}={v}" for k, v in data.items() if v is not None]
    args += ["--runs_dir", f"{workdir}/runs", "--checkpoints_dir", f"{workdir}/checkpoints"]
    args += ["--trainer.max_epochs", "2"] if quick else []
    start = time.perf_counter()
    cli = run_cli(args)
    seconds = time.perf_counter() - start
    metrics = cli.trainer.callback_metrics
    best = cli.trainer.checkpoint_callback.best_model_path
    return {"acc": float(metrics["test/acc"]), "f1": float(metrics["test/macro_f1"]), "seconds": seconds, "best": best}


def ensemble(checkpoints: list[str], data: dict) -> tuple[float, float]:
    """Mean class probability of several checkpoints on the test rows, each encoding raw rows with its own state."""
    dm = GenreDataModule(dataset=data["dataset"], path=data["path"], split=data["split"]).load()
    test = dm.frame.iloc[dm.splits["test"]]
    probs = []
    with torch.no_grad():
        for path in checkpoints:
            model = GenreClassifier.load_from_checkpoint(path, map_location="cpu").eval()
            pre = Preprocessor.from_state_dict(model.preprocessor_state["preprocessor"])
            probs.append(model(pre.transform(test)).softmax(-1))
    y = pre.encode_labels(test[dm.spec.target]).numpy()
    return scores(y, torch.stack(probs).mean(0).argmax(1).numpy())


def quick_sample(dataset: str, workdir: str, rows: int = 3000) -> str:
    """A stratified sample of the real file (for --quick)."""
    spec = get_spec(dataset)
    frame = spec.clean(read_csv(find_data_file(spec)))
    per_class = max(10, rows // frame[spec.target].nunique())
    sample = frame.groupby(spec.target, group_keys=False).head(per_class)
    path = f"{workdir}/{dataset}_quick.csv"
    sample.to_csv(path, index=False)
    return path


def single_threaded() -> None:
    """Worker initialiser: one thread per model (OpenMP spin-waits badly on a shared machine)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    threadpool_limits(1)
    torch.set_num_threads(1)


def run_task(task: tuple) -> dict:
    """Run one (model kind, ...) task and print its result at once; top-level so workers can pickle it."""
    kind, *args = task
    result = run_hgb(*args) if kind == "hgb" else run_net(*args)
    data, seed = (args[0], args[1]) if kind == "hgb" else (args[1], args[2])
    name = "hgb" if kind == "hgb" else args[0].name
    line = f"RESULT {data['dataset']} {data['features']} {name} seed {seed}: test acc {result['acc']:.4f}"
    print(f"{line} macro-F1 {result['f1']:.4f} seconds {result['seconds']:.0f}", flush=True)
    return result


def mean_std(values: list[float]) -> str:
    """'mean ± std' in percent."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def main() -> None:
    """Run the grid and print one markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["music_genre", "spotify_tracks"])
    parser.add_argument("--features", nargs="+", default=["audio", "audio+meta"])
    parser.add_argument("--models", nargs="+", default=["hgb", "best"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--split", choices=["canonical", "artist"], default="canonical")
    parser.add_argument("--ensemble", action="store_true", help="add the seed ensemble of every network")
    parser.add_argument("--jobs", type=int, default=1, help="models trained at a time (worker processes)")
    parser.add_argument("--quick", action="store_true", help="3,000-row sample, 2 epochs (CI)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        grid, tasks = [], []
        for dataset in args.datasets:
            path = quick_sample(dataset, workdir) if args.quick else None
            for features in args.features:
                data = {"dataset": dataset, "features": features, "split": args.split, "path": path}
                for model in args.models:
                    if model == "hgb":  # deterministic below 10^5 training rows, and costly: one seed
                        todo = [("hgb", {**data, "missing_indicators": True}, args.seeds[0], args.quick)]
                        name = "HistGradientBoosting (1 seed)"
                    else:
                        config = config_for(model, dataset, features)
                        todo = [
                            ("net", config, data, s, f"{workdir}/{len(tasks) + i}", args.quick)
                            for i, s in enumerate(args.seeds)
                        ]
                        name = f"{model} ({config.name})"
                    grid.append((dataset, features, model, name, data, len(tasks), len(todo)))
                    tasks += todo
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=single_threaded) as pool:
            results = list(pool.map(run_task, tasks))
        for dataset, features, model, name, data, first, count in grid:
            runs = results[first : first + count]
            acc, f1 = [r["acc"] for r in runs], [r["f1"] for r in runs]
            per_seed = ", ".join(f"{100 * a:.2f}" for a in acc)
            secs = statistics.mean(r["seconds"] for r in runs)
            rows.append([dataset, features, name, mean_std(acc), mean_std(f1), per_seed, f"{secs:.0f}"])
            if args.ensemble and model != "hgb":
                e_acc, e_f1 = ensemble([r["best"] for r in runs], data)
                cells = [dataset, features, f"{name}, {len(runs)}-seed ensemble"]
                rows.append([*cells, f"{100 * e_acc:.2f}", f"{100 * e_f1:.2f}", "-", "-"])
    print(f"\nseeds {args.seeds}; split {args.split} (test 20 %, seed 42; validation 10 % of the rest)\n")
    print("| dataset | features | model | test accuracy % | macro-F1 % | per seed | train s |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))


if __name__ == "__main__":
    main()
