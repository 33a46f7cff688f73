"""Accuracy benchmark: dataset x features x split x model over seeds -> one markdown table with its command and date.

python scripts/benchmark_accuracy.py [--datasets music_genre spotify_tracks] [--features audio audio+meta]
    [--splits canonical song artist] [--models lightgbm catboost realmlp best] [--seeds 0 1 2]
    [--meta_columns artist_name ...] [--ensemble] [--blend] [--jobs 1] [--quick]

Splits: canonical (stratified rows, DESIGN.md), song (no song in two splits: rows with identical audio features
or the same track_id are one song) and artist (no first artist in two splits). Every row reports test accuracy
on all test rows, on the rows whose song has a twin in training (listed there under another genre, almost
always; a lookup of training labels would score there, a model of music cannot) and on the twin-free rows.

Models: `best` is configs/<dataset>_<audio|meta>_best.yaml, `mlp` configs/<dataset>.yaml, any other name
ending in .yaml a config file; networks are trained with `genre-torch fit --config ... --seed_everything SEED`
plus the row's --data settings (early stopping and checkpoint choice on validation; the best checkpoint is
tested once). `lightgbm`, `catboost`, `realmlp` (pytabkit) are the anchors of genre_torch/tools/anchors.py and
`hgb` scikit-learn's HistGradientBoosting: they get the encoded features of the `best` config's data settings.
An anchor whose package is missing is left out with the reason printed. --meta_columns restricts audio+meta to
some metadata sources (e.g. track_name: the titles alone). --ensemble adds a row per network: the mean class
probability of its seed checkpoints. --blend adds a row per dataset, features and split: the mean over the
models of each model's seed-mean class probability, equal weights (nothing fitted, so no split is used to choose).
--quick trains on a stratified sample of 3,000 rows for 2 epochs with tiny
grids (CI smoke test; its numbers mean nothing). --jobs N runs N tasks at a time, each on one thread.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import shlex
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from genre_torch.tools.anchors import ANCHORS, missing
from genre_torch.tools.benchmark import blend, config_data, ensemble, quick_sample, run_task, single_threaded, summary

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("canonical", "song", "artist")


def config_for(model: str, dataset: str, features: str) -> Path:
    """The YAML behind a network's name."""
    if model == "mlp":
        return ROOT / "configs" / f"{dataset}.yaml"
    if model == "best":
        return ROOT / "configs" / f"{dataset}_{'audio' if features == 'audio' else 'meta'}_best.yaml"
    return Path(model)


def main() -> None:
    """Run the grid and print one markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["music_genre", "spotify_tracks"])
    parser.add_argument("--features", nargs="+", default=["audio", "audio+meta"])
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    parser.add_argument("--models", nargs="+", default=[*ANCHORS, "best"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--meta_columns", nargs="+", default=None, help="metadata sources of audio+meta rows")
    parser.add_argument("--ensemble", action="store_true", help="add the seed ensemble of every network")
    parser.add_argument("--blend", action="store_true", help="add the equal-weight blend of the models (not hgb)")
    parser.add_argument("--jobs", type=int, default=1, help="tasks run at a time (worker processes)")
    parser.add_argument("--quick", action="store_true", help="3,000-row sample, 2 epochs, tiny grids (CI)")
    args = parser.parse_args()
    if args.blend and ("hgb" in args.models or len(args.models) < 2):
        parser.error("--blend needs at least two models, none of them hgb (it gives no class probabilities)")
    skipped = {m: missing(m) for m in args.models if m in ANCHORS and missing(m)}
    for reason in skipped.values():
        print(f"left out: {reason}", flush=True)
    rows, grid, tasks = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        for dataset in args.datasets:
            path = quick_sample(dataset, workdir) if args.quick else None
            for features, split, model in (
                (f, s, m) for f in args.features for s in args.splits for m in args.models if m not in skipped
            ):
                meta = args.meta_columns if features == "audio+meta" else None
                data = {"dataset": dataset, "features": features, "split": split, "path": path, "meta_columns": meta}
                if model in (*ANCHORS, "hgb"):
                    data = {**config_data(config_for("best", dataset, features)), **data}
                    todo = [("anchor", model, data, s, args.quick) for s in args.seeds]
                    name = model
                else:
                    config = config_for(model, dataset, features)
                    todo = [("net", config, data, s, f"{workdir}/{len(tasks) + i}", args.quick)
                            for i, s in enumerate(args.seeds)]  # fmt: skip
                    name = f"{model} ({config.name})"
                label = features + (f" [{', '.join(meta)}]" if meta else "")
                grid.append((dataset, label, split, model, name, data, len(tasks), len(todo)))
                tasks += todo
        context = multiprocessing.get_context("spawn")
        workers = {"mp_context": context, "initializer": single_threaded, "initargs": (os.getpid(),)}
        with ProcessPoolExecutor(args.jobs, **workers) as pool:
            results = list(pool.map(run_task, tasks))
        blended: dict[tuple[str, str, str], list[tuple[str, list[dict]]]] = {}
        for dataset, label, split, model, name, data, first, count in grid:
            runs = results[first : first + count]
            rows.append([dataset, label, split, name, *summary(runs)])
            if args.ensemble and model not in (*ANCHORS, "hgb"):
                result = ensemble([r["best"] for r in runs], data)
                rows.append([dataset, label, split, f"{name}, {len(runs)}-seed ensemble", *summary([result])[:4]])
                rows[-1] += ["-", "-"]
            members = blended.setdefault((dataset, label, split), [])
            members.append((model, runs))
            if args.blend and len(members) == len(args.models) - len(skipped):  # the group's last model
                what = " + ".join(m if m in ANCHORS else Path(m).name for m, _ in members)
                result = blend([r for _, r in members])
                rows.append([dataset, label, split, f"blend, equal weights: {what}", *summary([result])[:4], "-", "-"])
    command = shlex.join(["python", "scripts/benchmark_accuracy.py", *sys.argv[1:]])
    print(f"\n`{command}` ({datetime.date.today().isoformat()}); seeds {args.seeds}; test 20 %, validation 10 % of")
    print("the rest; twin rows: test rows whose song (identical audio features or track_id) is also in training.\n")
    print("| dataset | features | split | model | test accuracy % | twin rows % (n) | twin-free rows % (n) "
          "| macro-F1 % | per seed | train s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))


if __name__ == "__main__":
    main()
