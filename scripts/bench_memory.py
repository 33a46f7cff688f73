"""Memory check: one training epoch on a synthetic N-row dataset with the spotify_tracks schema, peak RSS.

    python scripts/bench_memory.py                      # 10,000,000 rows, must stay within 4 GiB
    python scripts/bench_memory.py --rows 200000 --json out.json

What is measured: the synthetic rows are generated column by column straight into a DataFrame with the
spotify_tracks columns (numeric audio features, explicit, key, mode, time_signature, track_genre with 114
genres, an integer track_id) but without the free-text columns (artists, album_name, track_name): those
are not features and would only measure pandas' string storage. Reading the CSV is the one step that is
skipped (the frame stands in for `read_csv`); from there the ordinary path runs unchanged through
`genre-torch fit`'s own objects: DatasetSpec.clean (dedupe, parsing), the canonical stratified split,
Preprocessor fit on training rows, float32 encoding of every split, then Trainer.fit for one epoch
(training, validation, checkpoint) of GenreClassifier. Peak RSS is the process's ru_maxrss, generation
included.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch

from genre_torch.cli import run_cli
from genre_torch.core.data import datamodule as data

ROOT = Path(__file__).resolve().parents[1]
NUMERIC = ["danceability", "energy", "loudness", "speechiness", "acousticness", "instrumentalness"]
NUMERIC += ["liveness", "valence", "tempo"]


def synthetic_spotify(rows: int, genres: int = 114, seed: int = 0) -> pd.DataFrame:
    """spotify_tracks columns without the free-text ones; feature means depend on the genre."""
    rng = np.random.default_rng(seed)
    genre = rng.integers(0, genres, rows).astype(np.int16)
    shift = genre.astype(np.float32) / (genres - 1)
    frame = pd.DataFrame({"track_id": np.arange(rows, dtype=np.int64)})
    frame["popularity"] = rng.integers(0, 101, rows).astype(np.int64)
    frame["duration_ms"] = (180_000 + 60_000 * shift + rng.normal(0, 20_000, rows)).astype(np.int64)
    frame["explicit"] = rng.random(rows) < 0.1
    for i, name in enumerate(NUMERIC):
        frame[name] = (np.sin(shift * (i + 1) * 3.0) + rng.normal(0, 0.5, rows)).astype(np.float64)
    frame["key"] = rng.integers(0, 12, rows)
    frame["mode"] = (genre % 2).astype(np.int64)
    frame["time_signature"] = rng.choice(np.array([3, 4, 5]), rows, p=[0.1, 0.8, 0.1])
    names = np.array([f"genre{g:03d}" for g in range(genres)], dtype=object)
    frame["track_genre"] = names[genre]
    return frame


def main(argv: list[str] | None = None) -> None:
    """Generate, load through the data module, train one epoch, report peak RSS."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--batch_size", type=int, default=4096)
    p.add_argument("--hidden_dims", default="[128, 64, 32]", help="MLP widths (a YAML list)")
    p.add_argument("--limit_gib", type=float, default=4.0, help="exit with status 1 above this peak RSS")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    frames = [synthetic_spotify(args.rows)]  # popped by the data module's read: no other reference stays
    generated = time.perf_counter()
    rss_generated = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(data, "read_csv", lambda path: frames.pop()):
        cli = run_cli(
            [
                *("--config", str(ROOT / "configs" / "spotify_tracks.yaml"), "--data.path", __file__),
                *("--data.batch_size", str(args.batch_size), "--model.backbone.hidden_dims", args.hidden_dims),
                *("--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"),
                *("--runs_dir", f"{tmp}/runs", "--checkpoints_dir", f"{tmp}/checkpoints"),
                *("--num_threads", str(args.threads)),
            ],
            run=False,
        )
        cli.datamodule.load()
        loaded = time.perf_counter()
        rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        trained = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    x, _ = cli.datamodule.tensors["train"]
    result = {
        "rows": args.rows,
        "train_rows": len(x),
        "features": x.shape[1],
        "hidden_dims": args.hidden_dims,
        "batch_size": args.batch_size,
        "generate_s": generated - start,
        "load_s": loaded - generated,
        "train_epoch_s": trained - loaded,
        "val_acc": float(cli.trainer.callback_metrics["val/acc"]),
        "peak_rss_gib_after_generate": rss_generated,
        "peak_rss_gib_after_load": rss_loaded,
        "peak_rss_gib": peak,
        "limit_gib": args.limit_gib,
    }
    print(
        f"{args.rows:,} rows ({len(x):,} train x {x.shape[1]} features): generate {result['generate_s']:.1f} s, "
        f"clean + split + encode {result['load_s']:.1f} s, 1 epoch (batch {args.batch_size}, MLP {args.hidden_dims}) "
        f"{result['train_epoch_s']:.1f} s, val acc {result['val_acc']:.3f}"
    )
    print(
        f"peak RSS: {rss_generated:.2f} GiB after generating, {rss_loaded:.2f} GiB after loading, "
        f"{peak:.2f} GiB after the epoch (limit {args.limit_gib} GiB)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if peak > args.limit_gib:
        raise SystemExit(f"peak RSS {peak:.2f} GiB is over the {args.limit_gib} GiB limit")


if __name__ == "__main__":
    main()
