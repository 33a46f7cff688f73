"""The accuracy benchmark's runs (scripts/benchmark_accuracy.py): one model, split and seed per task, each scored on
all test rows and apart on the rows whose song has a twin in training (core/data/songs.py) and on the twin-free rows."""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import functools
import hashlib
import json
import os
import pickle
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from sklearn.metrics import f1_score

from genre_torch.core.compat import data_state
from genre_torch.core.data import GenreDataModule, find_data_file, read_csv
from genre_torch.core.data.datasets import get_spec
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.data.songs import has_twin
from genre_torch.core.training.module import GenreClassifier
from genre_torch.core.training.provenance import code_record, data_record, describe_code
from genre_torch.core.training.safe_files import atomic_path
from genre_torch.tools.reference_models import fit_anchor, fit_predict_hgb, hgb_model

PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent dies

ENCODING_KEYS = ("missing_indicators", "scaling", "meta_folds", "meta_smoothing", "meta_columns", "test_fraction",
                 "val_fraction", "split_seed")  # fmt: skip


def config_data(config: Path) -> dict[str, Any]:
    """The settings of a config that shape the encoded features (anchors then see what its network sees)."""
    data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
    return {k: v for k, v in data.items() if k in ENCODING_KEYS}


def outcome(
    dm: GenreDataModule, predicted: np.ndarray, seconds: float, note: str = "", best: str = "", proba: Any = None
) -> dict:
    """Per-run result: accuracy and macro-F1 on test, hits and twin flags per test row, seconds, notes, and the
    test labels and class probabilities (None where a model gives none) for a blend of models."""
    y, twins = dm.tensors["test"][1].cpu().numpy(), has_twin(dm.songs, dm.splits["test"], dm.splits["train"])
    proba = None if proba is None else np.asarray(proba, dtype=np.float32)
    return {**score(y, predicted, twins), "seconds": seconds, "note": note, "best": best, "proba": proba}


def score(y: np.ndarray, predicted: np.ndarray, twins: np.ndarray) -> dict:
    """Accuracy and macro-F1 of predicted test labels, with the labels, hits and twin flags per test row."""
    return {"acc": float((predicted == y).mean()), "f1": float(f1_score(y, predicted, average="macro")),
            "hits": predicted == y, "twins": twins, "y": y}  # fmt: skip


def run_net(config: Path, data: dict, seed: int, workdir: str, quick: bool) -> dict:
    """`genre-torch fit` one config with one seed; its best (validation) checkpoint scored once on test."""
    from genre_torch.cli import quiet_console, run_cli
    from genre_torch.core.training.lightning_cli import run_checkpoint

    quiet_console()  # the epoch lines and real warnings only, as `genre-torch fit` prints them
    args = ["fit", "--config", str(config), "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false"]
    args += ["--test_after_fit", "false"]  # the best checkpoint is scored on test below, once
    args += [f"--data.{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in data.items() if v is not None]
    args += ["--runs_dir", f"{workdir}/runs", "--checkpoints_dir", f"{workdir}/checkpoints"]
    args += ["--trainer.max_epochs", "2"] if quick else []
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # epoch lines to stderr: stdout is the benchmark's table
        cli = run_cli(args)
    seconds = time.perf_counter() - start
    best = run_checkpoint(cli.trainer).best_model_path
    model = GenreClassifier.load_from_checkpoint(best, map_location="cpu").eval()
    with torch.no_grad():
        proba = model(cli.datamodule.tensors["test"][0].cpu()).softmax(-1).numpy()
    return outcome(cli.datamodule, proba.argmax(1), seconds, f"{cli.trainer.current_epoch} epochs", best, proba)


def run_anchor(name: str, data: dict, seed: int, quick: bool) -> dict:
    """A tabular anchor or HistGradientBoosting (hgb; tools/reference_models.py) on the networks' encoded features."""
    dm = GenreDataModule(**data).load()
    splits = {s: tuple(t.numpy() for t in dm.tensors[s]) for s in ("train", "val", "test")}
    start = time.perf_counter()
    proba = None
    if name == "hgb":
        model = hgb_model(20 if quick else 300, seed)
        predicted, note = fit_predict_hgb(model, *splits["train"], *splits["val"], splits["test"][0])
    else:
        proba, note = fit_anchor(name, splits, dm.num_classes, seed, quick)
        predicted = proba.argmax(1)
    return outcome(dm, predicted, time.perf_counter() - start, note, proba=proba)


def ensemble(checkpoints: list[str], data: dict) -> dict:
    """Mean class probability of several checkpoints on the test rows, each encoding raw rows with its own state."""
    keep = ("dataset", "path", "split", "test_fraction", "val_fraction", "split_seed")
    dm = GenreDataModule(**{k: v for k, v in data.items() if k in keep}).load()
    test = dm.frame.iloc[dm.splits["test"]]
    probs = []
    with torch.no_grad():
        for path in checkpoints:
            model = GenreClassifier.load_from_checkpoint(path, map_location="cpu").eval()
            pre = Preprocessor.from_state_dict(data_state(torch.load(path, weights_only=True))["preprocessor"])
            probs.append(model(pre.transform(test)).softmax(-1))
    return outcome(dm, torch.stack(probs).mean(0).argmax(1).numpy(), 0.0)


def blend(models: list[list[dict]]) -> dict:
    """Equal-weight mean over models of each model's seed-mean test probabilities (no weight is fitted)."""
    first = models[0][0]
    if any(not np.array_equal(r["y"], first["y"]) for runs in models for r in runs):
        raise ValueError("a blend needs every model scored on the same test rows in the same order")
    proba = np.mean([np.mean([r["proba"] for r in runs], axis=0) for runs in models], axis=0)
    return {**score(first["y"], proba.argmax(1), first["twins"]), "seconds": 0.0}


def quick_sample(dataset: str, workdir: str, rows: int = 3000) -> str:
    """A stratified sample of the real file (for --quick)."""
    spec = get_spec(dataset)
    frame = spec.clean(read_csv(find_data_file(spec)))
    per_class = max(10, rows // frame[spec.target].nunique())
    sample = frame.sample(frac=1.0, random_state=0).groupby(spec.target).head(per_class)  # shuffled: many artists
    path = f"{workdir}/{dataset}_quick.csv"
    sample.to_csv(path, index=False)
    return path


def single_threaded(parent: int | None = None) -> None:
    """Worker initialiser: one thread per model (OpenMP spin-waits badly on a shared machine). On Linux a worker
    of the process `parent` also stops when that process dies (`kill PID` would otherwise leave it training)."""
    from threadpoolctl import threadpool_limits

    if parent is not None and sys.platform.startswith("linux"):
        # SIGKILL: a worker inside a Lightning fit (pytabkit's RealMLP) has Lightning's SIGTERM handler, which only
        # asks the fit to stop; one trained on for an hour after its benchmark was killed. Results are written whole.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died while this worker was starting, before the signal was asked for
            os.kill(os.getpid(), signal.SIGKILL)

    os.environ["OMP_NUM_THREADS"] = "1"
    threadpool_limits(1)
    torch.set_num_threads(1)


@functools.cache
def digest(*paths: Path) -> str:
    """sha256 of these files' names (not their folders) and bytes; cached: a benchmark asks once per task."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def task_key(task: tuple) -> str:
    """What a task's result depends on, hashed: the task, its config's text, the data file's bytes, our code.

    A kept result is reused only when all of these are the same; the code is every .py file of the package.
    """
    kind, name, data, seed, *_ = task
    package = Path(__file__).resolve().parents[1]
    parts = [kind, str(name), data, seed, task[-1], digest(*sorted(package.rglob("*.py")))]
    parts.append(digest(find_data_file(get_spec(data["dataset"]), data.get("path"))))
    if kind == "net":
        parts.append(Path(name).read_text())
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def kept_path(folder: str | Path, key: str) -> Path:
    """Where a task's kept result lives."""
    return Path(folder) / "results" / f"{key}.pkl"


def run_kept(item: tuple[tuple, str, str]) -> dict:
    """Run (task, folder, key) and keep its result at kept_path (written whole, then renamed), with its date, the
    commit it ran at and the name and sha256 of its data file.

    A network trains in folder/tasks/KEY: its checkpoints stay beside the result (an ensemble reloads them).
    """
    task, folder, key = item
    if task[0] == "net":
        task = (*task[:-1], f"{folder}/tasks/{key}", task[-1])
    data = task[2]
    file = data_record(find_data_file(get_spec(data["dataset"]), data.get("path")))
    result = {**run_task(task), "date": datetime.date.today().isoformat(), "commit": describe_code(code_record())}
    result["data"] = (Path(file["path"]).name, file["sha256"])  # what the number was measured at
    with atomic_path(kept_path(folder, key)) as tmp, open(tmp, "wb") as out:
        pickle.dump(result, out)
    return result


def load_kept(path: Path) -> dict | None:
    """A kept result, or None when there is none."""
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as kept:
        return pickle.load(kept)
    return None


def run_task(task: tuple) -> dict:
    """Run one task, ("net", config, data, seed, workdir, quick) or ("anchor", name, data, seed, quick), and print
    its result at once on stderr; top-level so that worker processes can pickle it."""
    kind, name, *args = task
    result = run_net(name, *args) if kind == "net" else run_anchor(name, *args)
    data, seed = args[0], args[1]
    label = f"{data['dataset']} {data['features']} split {data['split']} {Path(str(name)).name} seed {seed}"
    twins, hits = result["twins"], result["hits"]
    print(f"RESULT {label}: test acc {result['acc']:.4f} (twin rows {hits[twins].mean() if twins.any() else 0:.4f}, "
          f"twin-free {hits[~twins].mean():.4f}) macro-F1 {result['f1']:.4f} seconds {result['seconds']:.0f}; "
          f"{result['note']}", file=sys.stderr, flush=True)  # fmt: skip
    return result


def pct(values: list[float]) -> str:
    """'mean ± std' in percent ('mean' alone for one value)."""
    mean = 100 * statistics.mean(values)
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def summary(runs: list[dict]) -> list[str]:
    """Table cells of one row over its seeds: accuracy, twin rows, twin-free rows, macro-F1, per seed, seconds."""
    twin = [r["hits"][r["twins"]].mean() for r in runs if r["twins"].any()]
    free = [r["hits"][~r["twins"]].mean() for r in runs]
    n_twin, n = int(runs[0]["twins"].sum()), len(runs[0]["twins"])
    return [
        pct([r["acc"] for r in runs]),
        f"{pct(twin)} ({n_twin})" if twin else f"- ({n_twin})",
        f"{pct(free)} ({n - n_twin})",
        pct([r["f1"] for r in runs]),
        ", ".join(f"{100 * r['acc']:.2f}" for r in runs),
        f"{statistics.mean(r['seconds'] for r in runs):.0f}",
    ]
