"""Accuracy benchmark: dataset x features x split x model over seeds -> one markdown table with its command and date.

python scripts/benchmark_accuracy.py [--datasets music_genre spotify_tracks] [--features audio audio+meta]
    [--splits canonical song artist] [--models lightgbm catboost realmlp best] [--seeds 0 1 2]
    [--meta_columns artist_name ...] [--ensemble] [--blend] [--jobs 1] [--out_dir DIR] [--readme FILE] [--quick]

Splits: canonical (stratified rows, DESIGN.md), song (no song in two splits: rows with identical audio features
or the same track_id are one song) and artist (no first artist in two splits). Every row reports test accuracy
on all test rows, on the rows whose song has a twin in training (listed there under another genre, almost
always; a lookup of training labels would score there, a model of music cannot) and on the twin-free rows.

Models: `best` is configs/<dataset>_<audio|meta>_best.yaml, `mlp` configs/<dataset>.yaml, any other name
ending in .yaml a config file; networks are trained with `genre-torch fit --config ... --seed_everything SEED`
plus the row's --data settings (early stopping and checkpoint choice on validation; the best checkpoint is
tested once). `lightgbm`, `catboost`, `realmlp` (pytabkit) are the anchors and `hgb` scikit-learn's
HistGradientBoosting, all of genre_torch/tools/reference_models.py: they get the encoded features of the `best`
config's data settings. An anchor whose package is missing is left out with the reason printed. --meta_columns
restricts audio+meta to some metadata sources (e.g. track_name: the titles alone). --ensemble adds a row per
network: the mean class probability of its seed checkpoints. --blend adds a row per dataset, features and split:
the mean over the models of each model's seed-mean class probability, equal weights (nothing fitted, so no split is
used to choose).
--quick trains on a stratified sample of 3,000 rows for 2 epochs with tiny
grids (CI smoke test; its numbers mean nothing). --jobs N runs N tasks at a time, each on one thread.
--out_dir DIR keeps each finished task's result (and a network's checkpoints) in DIR as it ends: the same command
again with the same DIR runs only the tasks without one, so a long benchmark can be stopped and resumed (a result
is reused only when its config, data file and the package's code are unchanged; the table then gives the dates
its results come from). Without it, a temporary folder is used and deleted. --readme FILE writes a row per model
and a column per split (song-grouped first), with the command and date, between the lines
<!-- benchmark_accuracy:begin --> and <!-- benchmark_accuracy:end --> of FILE
(the README's results table is generated this way).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("song", "artist", "canonical")
MARKERS = ("<!-- benchmark_accuracy:begin -->", "<!-- benchmark_accuracy:end -->")


def shown(arg: str) -> str:
    """An argument as the README shows it: an absolute path relative to the working folder, or its last two parts."""
    path = Path(arg)
    if not path.is_absolute():
        return arg
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else Path(*path.parts[-2:]).as_posix()


def with_block(text: str, block: str) -> str:
    """text with the lines between MARKERS replaced by block; ValueError without both markers, in order."""
    lines = text.splitlines(keepends=True)
    marks = [i for i, line in enumerate(lines) if line.strip() in MARKERS]
    if len(marks) != 2 or lines[marks[0]].strip() != MARKERS[0]:
        raise ValueError(f"it needs the lines {MARKERS[0]} and {MARKERS[1]}, once each and in that order")
    return "".join([*lines[: marks[0] + 1], block, *lines[marks[1] :]])


def readme_table(rows: list[list[str]], head: str) -> str:
    """The README's table: a row per model, a column per split (song-grouped first, then artist-grouped, then the
    canonical split and its twin-free rows), each cell the mean ± std over seeds."""
    splits = [s for s in ("song", "artist", "canonical") if any(r[2] == s for r in rows)]
    titles = {"song": "song-grouped split %", "artist": "artist-grouped split %", "canonical": "canonical split %"}
    columns = [titles[s] for s in splits] + (["canonical, twin-free rows %"] if "canonical" in splits else [])
    cells: dict[tuple[str, str, str], dict[str, str]] = {}
    for dataset, features, split, model, acc, _, free, *_ in rows:
        row = cells.setdefault((dataset, features, model), {})
        row[titles[split]] = acc
        if split == "canonical":
            row["canonical, twin-free rows %"] = free.rsplit(" (", 1)[0]
    lines = [head, "", "| dataset | features | model | " + " | ".join(columns) + " |"]
    lines.append("|---" * (3 + len(columns)) + "|")
    for (dataset, features, model), row in cells.items():
        lines.append(f"| {dataset} | {features} | {model} | " + " | ".join(row.get(c, "-") for c in columns) + " |")
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--models", nargs="+", help="default: the anchors and best")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--meta_columns", nargs="+", default=None, help="metadata sources of audio+meta rows")
    parser.add_argument("--ensemble", action="store_true", help="add the seed ensemble of every network")
    parser.add_argument("--blend", action="store_true", help="add the equal-weight blend of the models (not hgb)")
    parser.add_argument("--jobs", type=int, default=1, help="tasks run at a time (worker processes)")
    parser.add_argument("--out_dir", type=Path, help="keep each task's result here; run again to resume")
    parser.add_argument("--readme", type=Path, help="write a model x split table between the markers of this file")
    parser.add_argument("--quick", action="store_true", help="3,000-row sample, 2 epochs, tiny grids (CI)")
    args = parser.parse_args()
    if args.readme:
        try:
            with_block(args.readme.read_text(), "")
        except (OSError, ValueError) as e:
            parser.error(f"--readme {args.readme}: {e}")
    if args.blend and args.models is not None and ("hgb" in args.models or len(args.models) < 2):
        parser.error("--blend needs at least two models, none of them hgb (it gives no class probabilities)")
    # the arguments are checked: now the heavy imports (torch, Lightning, scikit-learn), seconds
    from genre_torch.core.training.provenance import stamp
    from genre_torch.core.training.safe_files import atomic_path
    from genre_torch.tools.benchmark import (
        blend,
        config_data,
        ensemble,
        kept_path,
        load_kept,
        quick_sample,
        run_kept,
        single_threaded,
        summary,
        task_key,
    )
    from genre_torch.tools.reference_models import ANCHORS, missing

    args.models = args.models or [*ANCHORS, "best"]
    skipped = {m: missing(m) for m in args.models if m in ANCHORS and missing(m)}
    for reason in skipped.values():
        print(f"left out: {reason}", flush=True)
    rows, grid, tasks = [], [], []
    with tempfile.TemporaryDirectory() as temporary:
        workdir = (args.out_dir or Path(temporary)).resolve()
        (workdir / "results").mkdir(parents=True, exist_ok=True)
        for dataset in args.datasets:
            path = quick_sample(dataset, str(workdir)) if args.quick else None
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
                    todo = [("net", config, data, s, args.quick) for s in args.seeds]
                    name = model if model.endswith(".yaml") else f"{model} ({config.name})"
                label = features + (f" [{', '.join(meta)}]" if meta else "")
                grid.append((dataset, label, split, model, name, data, len(tasks), len(todo)))
                tasks += todo
        keys = [task_key(t) for t in tasks]
        results = [load_kept(kept_path(workdir, k)) for k in keys]
        todo = [i for i, r in enumerate(results) if r is None]
        if len(todo) < len(tasks):
            print(f"kept: {len(tasks) - len(todo)} of {len(tasks)} tasks' results in {workdir}", file=sys.stderr)
        context = multiprocessing.get_context("spawn")
        workers = {"mp_context": context, "initializer": single_threaded, "initargs": (os.getpid(),)}
        with ProcessPoolExecutor(args.jobs, **workers) as pool:
            items = [(tasks[i], str(workdir), keys[i]) for i in todo]
            for i, result in zip(todo, pool.map(run_kept, items), strict=True):
                results[i] = result
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
    command = shlex.join(["python", "scripts/benchmark_accuracy.py", *map(shown, sys.argv[1:])])
    dates = sorted({r["date"] for r in results})
    when = dates[0] if len(dates) == 1 else f"results from {dates[0]} to {dates[-1]}"
    # kept results from before provenance was recorded name no commit
    when += ", " + stamp([r.get("commit", "unknown") for r in results], dict(r["data"] for r in results if "data" in r))
    print(f"\n`{command}` ({when}); seeds {args.seeds}; test 20 %, validation 10 % of")
    print("the rest; twin rows: test rows whose song (identical audio features or track_id) is also in training.\n")
    print("| dataset | features | split | model | test accuracy % | twin rows % (n) | twin-free rows % (n) "
          "| macro-F1 % | per seed | train s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))
    if args.readme:
        about = f"`{command}` ({when}), seeds {args.seeds}; twin-free: test rows whose song is not in training."
        text = with_block(args.readme.read_text(), readme_table(rows, about))
        with atomic_path(args.readme) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()
