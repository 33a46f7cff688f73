"""The argument parsers of the tool subcommands, in a module that imports nothing heavy.

`genre-torch TOOL --help` and usage errors are answered from here before the tool imports torch or pandas.
Flags follow LightningCLI's style: words joined by underscores, dotted groups (--ckpt_path, --data.path).
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from genre_torch.core.errors import GenreTorchError
from genre_torch.tools import common

DATASET_HELP = "a built-in dataset (music_genre, spotify_tracks) or the path of a dataset spec .yaml"
CKPT_HELP = "checkpoint written by `genre-torch fit`"


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are GenreTorchError: one line on stderr, exit code 2.

    `check` runs on the parsed arguments (files that must exist, outputs that can be written), so that the CLI,
    which parses before importing the tool, answers bad files before torch and pandas are imported.
    """

    def __init__(self, *args: Any, check: Callable[[argparse.Namespace], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.check = check

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        if self.check is not None:
            self.check(parsed)
        return parsed, rest

    def error(self, message: str) -> NoReturn:
        raise GenreTorchError(f"{message} (see `{self.prog} --help`)")


def _check_predict(args: argparse.Namespace) -> None:
    if args.chunk_size < 1:
        raise GenreTorchError("--chunk_size must be at least 1")
    common.check_checkpoint(args.ckpt_path)
    if not is_dataset_name(args.input):
        common.check_input(args.input)
    common.check_output(args.output, (args.input, args.ckpt_path))


def is_dataset_name(text: str) -> bool:
    """A bare word such as music_genre that names no existing file: --input then looks the dataset up."""
    return not Path(text).exists() and Path(text).name == text and "." not in text


def _check_export(args: argparse.Namespace) -> None:
    common.check_checkpoint(args.ckpt_path)
    if str(args.output).endswith(".json"):
        raise GenreTorchError(f"{args.output}: the .json name is taken by the sidecar file; use .onnx or .pt")
    common.check_output(args.output, [args.ckpt_path])
    common.check_output(Path(args.output).with_suffix(".json"), [args.ckpt_path])


def _check_importance(args: argparse.Namespace) -> None:
    if args.repeats < 1:
        raise GenreTorchError("--repeats must be at least 1")
    common.check_checkpoint(args.ckpt_path)
    if args.data_path is not None:
        common.check_input(args.data_path, "data file")


def predict() -> ArgumentParser:
    """`genre-torch predict`."""
    p = ArgumentParser(
        prog="genre-torch predict", description="Score raw CSV rows with a checkpoint alone.", check=_check_predict
    )
    p.add_argument("--ckpt_path", required=True, help=CKPT_HELP)
    p.add_argument(
        "--input",
        required=True,
        help="CSV (.csv/.csv.gz) in the dataset's own format, or a dataset name (music_genre) to score the file "
        "training finds for it",
    )
    p.add_argument("--output", required=True, help="CSV to write (.csv or .csv.gz; complete or not at all)")
    p.add_argument("--chunk_size", type=int, default=100_000, help="rows read and scored at a time")
    p.add_argument(
        "--force",
        action="store_true",
        help="score input that looks like another dataset or has no usable numeric value (refused otherwise)",
    )
    return p


def info() -> ArgumentParser:
    """`genre-torch info`."""
    p = ArgumentParser(
        prog="genre-torch info",
        description="Print a checkpoint's provenance (code, data, machine, command), settings and metrics.",
    )
    p.add_argument("--ckpt_path", required=True, help=CKPT_HELP)
    return p


def export() -> ArgumentParser:
    """`genre-torch export`."""
    p = ArgumentParser(
        prog="genre-torch export",
        description="Write a checkpoint as one ONNX or TorchScript graph: preprocessing, network and softmax; "
        "the input contract goes to a sidecar FILE.json.",
        check=_check_export,
    )
    p.add_argument("--ckpt_path", required=True, help=CKPT_HELP)
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"], help="onnx or torchscript")
    p.add_argument("--output", required=True, help="file to write (e.g. model.onnx / model.pt)")
    return p


def importance() -> ArgumentParser:
    """`genre-torch importance`."""
    p = ArgumentParser(
        prog="genre-torch importance",
        description="Permutation importance on the test split: the drop in test accuracy when each original "
        "column is shuffled.",
        check=_check_importance,
    )
    p.add_argument("--ckpt_path", required=True, help=CKPT_HELP)
    p.add_argument("--data.path", dest="data_path", help="data file (default: as the checkpoint was trained)")
    p.add_argument("--repeats", type=int, default=5, help="shuffles per column")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles")
    p.add_argument("--runs_dir", default="runs", help="TensorBoard folder: writes <runs_dir>/<dataset>/importance")
    return p


def data() -> ArgumentParser:
    """`genre-torch data download|check`."""
    p = ArgumentParser(prog="genre-torch data", description="Get a dataset verified, or inspect a CSV.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    down = sub.add_parser(
        "download",
        help="download a dataset and verify its sha256",
        description="Download a dataset (a built-in name, a spec .yaml, or the dataset of a training --config) and "
        "verify its sha256, into --dest ($GENRE_TORCH_DATA_DIR, else ./data), where training finds it. "
        "music_genre comes from Kaggle and needs an API token; --file places a file you downloaded yourself.",
    )
    down.add_argument("name", nargs="?", help=DATASET_HELP)
    down.add_argument("--config", type=Path, help="take the dataset (and data.path) from this training config")
    down.add_argument("--if_missing", action="store_true", help="nothing to do if training finds a file")
    down.add_argument("--dest", type=Path, default=None, help="folder (default: $GENRE_TORCH_DATA_DIR, else ./data)")
    down.add_argument("--file", type=Path, default=None, help="verify and place a file you downloaded yourself")
    down.add_argument("--retries", type=int, default=2, help="download attempts after a failed one (default 2)")
    down.add_argument("--no_progress", action="store_true", help="no progress bar")
    check = sub.add_parser(
        "check",
        help="validate a CSV against its dataset spec and summarise it",
        description="Check a CSV against its dataset spec without training: its sha256 against the known upstream "
        "file, missing columns, values cleaning turns into missing ones, labels, duplicates and a summary per "
        "column. TARGET is a dataset name (its file is looked up as training does) or the path of a CSV.",
    )
    check.add_argument("target", help="dataset name (looked up like training does) or path of a CSV")
    check.add_argument("--dataset", default=None, help=f"spec to check PATH against: {DATASET_HELP}")
    check.add_argument("--no_hash", action="store_true", help="skip the sha256 comparison")
    return p


def prepare() -> ArgumentParser:
    """`genre-torch prepare`."""
    p = ArgumentParser(
        prog="genre-torch prepare",
        description="Clean, split, fit and encode a dataset once, written as Parquet per split + JSON state "
        "(pandas or Spark engine, the same result).",
    )
    p.add_argument("--dataset", required=True, help="a built-in dataset (music_genre, spotify_tracks)")
    p.add_argument("--engine", choices=["pandas", "spark"], default="pandas", help="default: pandas")
    p.add_argument("--output", type=Path, required=True, help="folder to write (train/ val/ test/ + JSON)")
    p.add_argument("--data.path", dest="path", default=None, help="CSV (default: as training finds it)")
    p.add_argument("--spark_master", default=None, help="Spark master URL (default: $SPARK_MASTER or local[*])")
    p.add_argument("--spark_conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting")
    p.add_argument("--test_fraction", type=float, default=0.2, help="canonical split: 0.2")
    p.add_argument("--val_fraction", type=float, default=0.1, help="canonical split: 0.1")
    p.add_argument("--split_seed", type=int, default=42, help="canonical split: 42")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    return p


SEARCH_HELP = (
    "Both run Optuna studies of `fit` options on a shared storage with N workers. Options after the command's own "
    "are fit options, fixed for every trial (e.g. --config configs/music_genre.yaml --trainer.max_epochs 2). The "
    "study lives in <runs_dir>/<study>/study.db (SQLite) or --storage URL and resumes when the command runs again; "
    'every trial is a TensorBoard run. The test split never reaches a model. Details: docs/guide.md, "Search and '
    'sweeps".'
)
TUNE_HELP = (
    "Search the space file's ranges, choices and conditions with TPE, pruning trials on validation accuracy "
    "(median rule), for --trials trials in all, the first of them the base config's values when they lie in the "
    "space. The best trial is written as a complete config "
    "(<runs_dir>/<study>/best.yaml, or --out) that `genre-torch fit --config` reproduces and tests once."
)
SWEEP_HELP = (
    "Train every cell of a grid (every combination of the space file's choices) exactly once across the workers, "
    "in the file's order with the last key varying fastest, then print a markdown summary on validation accuracy: "
    "the best per activation, depth and width, the spread over seeds and the top 10 (also written to --out)."
)


def _search(name: str, what: str) -> ArgumentParser:
    """The options tune and sweep share; the rest of the command line are fit options (parse_known_args)."""
    text = "\n\n".join(textwrap.fill(paragraph, 100) for paragraph in (what, SEARCH_HELP))
    p = ArgumentParser(
        prog=f"genre-torch {name}",
        description=text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--space", required=True, help="search space YAML (see configs/spaces/)")
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite in <runs_dir>/<study>/study.db)")
    p.add_argument("--study", help="study name (default: <config name>-<space name>)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--out", type=Path, help="best config (tune) or markdown summary (sweep) file")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between a running trial's heartbeats")
    p.add_argument("--timeout", type=float, help="seconds after which a worker starts no new trial (rerun resumes)")
    return p


def tune() -> ArgumentParser:
    """`genre-torch tune`."""
    p = _search("tune", TUNE_HELP)
    p.add_argument("--trials", type=int, default=30, help="trials in the whole study (all workers)")
    return p


def sweep() -> ArgumentParser:
    """`genre-torch sweep`."""
    p = _search("sweep", SWEEP_HELP)
    p.add_argument("--limit", type=int, help="only the first LIMIT cells of the grid")
    return p


KNOWN_ARGS_ONLY = ("tune", "sweep")  # their unknown options are fit options
