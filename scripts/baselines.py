"""Baselines side by side: scikit-learn models, k-means and the configured MLP on the same split and features.

python scripts/baselines.py [--datasets music_genre spotify_tracks] [--seeds 42] [--quick] [--models hgb mlp ...]

Every model sees the canonical split (test 20 %, seed 42; validation 10 % of the rest) and the same
encoded `audio` features (GenreDataModule: median imputation, standardisation, one-hot). The test
split is scored once per trained model. HistGradientBoosting stops early on the canonical validation
split (validation accuracy, 10 rounds without improvement) and is scored at its best validation
round; the MLP is `genre-torch fit --config configs/<dataset>.yaml` (early stopping on validation
loss); k-means has one cluster per genre and maps each cluster to its majority genre on training
rows. Train seconds are wall time on this machine; for the MLP they cover the whole fit (data loading
and the final validate + test included).
--quick trains on 2,000 training rows with few iterations, for the test suite. The scikit-learn
models run on --threads OpenMP/BLAS threads (default 1: on a shared, loaded machine OpenMP spin-waiting
made HistGradientBoosting 7x slower with 2 threads than with 1).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from genre_torch.cli import run_cli
from genre_torch.core.data import GenreDataModule
from genre_torch.tools.reference_models import fit_predict_hgb, hgb_model

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("logreg", "rf", "hgb", "kmeans", "mlp")


def sklearn_models(quick: bool, seed: int, num_classes: int) -> dict[str, tuple[str, object]]:
    """The supervised scikit-learn baselines: key -> (name with its settings, estimator).

    HistGradientBoosting stops on validation accuracy (as the LightGBM reference in DESIGN.md, which
    stopped on error) and is scored at its best validation round. Without L2 regularisation its
    validation accuracy on 114 genres peaked at round 2 and then fell; with l2 = 1 it rises steadily.
    It grows one tree per genre per round, ~15 s a round on one loaded core with 114 genres, so above
    50 genres it runs at most 40 rounds.
    """
    trees, rounds = (10, 5) if quick else (100, 300) if num_classes <= 50 else (100, 40)
    hgb = hgb_model(rounds, seed)
    return {
        "logreg": ("LogisticRegression (lbfgs, C=1)", LogisticRegression(max_iter=100 if quick else 1000)),
        "rf": (
            f"RandomForest ({trees} trees, min_samples_leaf=2)",
            RandomForestClassifier(n_estimators=trees, min_samples_leaf=2, random_state=seed),
        ),
        "hgb": (
            f"HistGradientBoosting (lr 0.1, l2 1, 31 leaves, <= {rounds} rounds)",
            hgb,
        ),
    }


def kmeans_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means with one cluster per genre; each cluster predicts its majority training genre."""
    km = KMeans(n_clusters=k, n_init=1 if len(x_train) < 5000 else 3, random_state=seed).fit(x_train)
    majority = np.array([np.bincount(y_train[km.labels_ == c], minlength=k).argmax() for c in range(k)])
    return majority[km.predict(x_test)]


def mlp(dataset: str, seed: int, quick: bool, workdir: str) -> tuple[float, float, float]:
    """Test accuracy, macro-F1 and wall seconds of the configured MLP (a full `genre-torch fit`)."""
    args = ["fit", "--config", str(ROOT / "configs" / f"{dataset}.yaml"), "--seed_everything", str(seed)]
    args += ["--trainer.enable_progress_bar", "false", "--runs_dir", f"{workdir}/runs"]
    args += ["--checkpoints_dir", f"{workdir}/checkpoints"] + (["--trainer.max_epochs", "2"] if quick else [])
    start = time.perf_counter()
    metrics = run_cli(args).trainer.callback_metrics
    return float(metrics["test/acc"]), float(metrics["test/macro_f1"]), time.perf_counter() - start


def run_dataset(
    dataset: str, seeds: list[int], quick: bool, workdir: str, threads: int, models: list[str]
) -> dict[str, list[tuple]]:
    """(accuracy, macro-F1, seconds) per model and seed."""
    dm = GenreDataModule(dataset).load()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (
        (x.numpy(), y.numpy()) for x, y in (dm.tensors[s] for s in ("train", "val", "test"))
    )
    if quick:
        keep = np.random.default_rng(0).permutation(len(x_tr))[:2000]
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    results: dict[str, list[tuple]] = {}

    def score(name: str, predicted: np.ndarray, seconds: float) -> None:
        f1 = f1_score(y_te, predicted, average="macro")
        results.setdefault(name, []).append((accuracy_score(y_te, predicted), f1, seconds))

    for seed in seeds:
        for key, (name, model) in sklearn_models(quick, seed, dm.num_classes).items():
            if key not in models:
                continue
            start = time.perf_counter()
            with threadpool_limits(threads):
                if isinstance(model, HistGradientBoostingClassifier):
                    predicted, note = fit_predict_hgb(model, x_tr, y_tr, x_va, y_va, x_te)
                    note = f", {note}"
                else:
                    predicted, note = model.fit(x_tr, y_tr).predict(x_te), ""
            seconds = time.perf_counter() - start
            score(name, predicted, seconds)
            print(f"{dataset} seed {seed}: {name} done in {seconds:.0f} s{note}", flush=True)
        start = time.perf_counter()
        if "kmeans" in models:
            with threadpool_limits(threads):
                predicted = kmeans_predict(x_tr, y_tr, x_te, dm.num_classes, seed)
            name = f"k-means (k = {dm.num_classes}, majority genre per cluster)"
            score(name, predicted, time.perf_counter() - start)
        if "mlp" in models:
            acc, f1, seconds = mlp(dataset, seed, quick, workdir)
            results.setdefault(f"MLP (configs/{dataset}.yaml)", []).append((acc, f1, seconds))
    return results


def cell(values: list[float], scale: float, digits: int) -> str:
    """A value, or 'mean ± std' over seeds."""
    if len(values) == 1:
        return f"{scale * values[0]:.{digits}f}"
    return f"{scale * statistics.mean(values):.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def table(dataset: str, results: dict[str, list[tuple]]) -> str:
    """Markdown table of one dataset."""
    lines = [f"### {dataset}", "", "| model | test accuracy % | macro-F1 % | train seconds |", "|---|---|---|---|"]
    for name, runs in results.items():
        acc, f1, sec = zip(*runs, strict=True)
        lines.append(f"| {name} | {cell(acc, 100, 2)} | {cell(f1, 100, 2)} | {cell(sec, 1, 0)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Train every baseline on every dataset and print one markdown table per dataset."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["music_genre", "spotify_tracks"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="training seeds (the split stays fixed)")
    parser.add_argument("--quick", action="store_true", help="2,000 training rows, few iterations")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="which baselines to run")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/BLAS threads of the scikit-learn models")
    parser.add_argument("--workdir", help="keep the MLP runs and checkpoints here (default: a temporary folder)")
    args = parser.parse_args(argv)
    mode = "quick mode (2,000 training rows)" if args.quick else "full training split"
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            results = run_dataset(dataset, args.seeds, args.quick, args.workdir or tmp, args.threads, args.models)
            print(f"\ncanonical split (test 20 %, seed 42), audio features, seeds {args.seeds}, {mode}, ", end="")
            print(f"scikit-learn on {args.threads} thread(s)\n\n{table(dataset, results)}\n", flush=True)


if __name__ == "__main__":
    main()
