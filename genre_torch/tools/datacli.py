"""`genre-torch data download|check`: get a dataset verified, or inspect a CSV without training."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from genre_torch.core.data import find_data_file, read_csv
from genre_torch.core.data.datasets import SPECS, DatasetSpec, load_spec
from genre_torch.core.data.datasets.schema import read_yaml
from genre_torch.core.errors import GenreTorchError
from genre_torch.tools import acquire, parsers
from genre_torch.tools.datacheck import guess_spec, report_lines


def config_data(path: Path) -> dict[str, Any]:
    """The `data:` section of a training config (dataset defaults to music_genre, as in GenreDataModule)."""
    if not path.is_file():
        raise GenreTorchError(f"config file {path} does not exist")
    config = read_yaml(path) or {}
    data = config.get("data") if isinstance(config, dict) else None
    return {"dataset": "music_genre", **(data if isinstance(data, dict) else {})}


def download(args: argparse.Namespace) -> None:
    """`data download`: fetch (or place --file) the dataset, verified; with --if_missing only when absent."""
    if (args.name is None) == (args.config is None):
        raise GenreTorchError("data download takes a dataset NAME or --config CONFIG (one of them)")
    data = config_data(args.config) if args.config else {"dataset": args.name}
    spec = load_spec(data["dataset"])
    if args.if_missing and args.file is None:
        try:
            found = find_data_file(spec, data.get("path"))
        except GenreTorchError:
            if data.get("path"):  # an explicit path that does not exist: downloading elsewhere would not help
                raise
        else:
            print(f"{spec.name}: {found} is present; nothing to download")
            return
    dest = args.dest or acquire.default_dest()
    if args.file is not None:
        path = acquire.place_file(spec, args.file, dest)
    else:
        path = acquire.download(spec, dest, retries=args.retries, progress=not args.no_progress)
    verdict = f"sha256 verified: {spec.sha256}" if spec.sha256 else "not verified: the spec has no sha256"
    print(f"{spec.name}: {path} ({verdict})")


def check(args: argparse.Namespace) -> None:
    """`data check`: the report of datacheck.report_lines, printed as it is computed."""
    spec: DatasetSpec | None = load_spec(args.dataset) if args.dataset else None
    if args.target in SPECS and spec is None:
        spec = SPECS[args.target]
        path = find_data_file(spec)
    elif Path(args.target).is_file():
        path = Path(args.target)
    else:
        raise GenreTorchError(f"{args.target} is neither a dataset ({', '.join(SPECS)}) nor a file")
    raw = read_csv(path)
    spec = spec or guess_spec(path, raw)
    print(f"file: {path}")
    if not args.no_hash:
        digest = acquire.file_sha256(path)
        known = spec.sha256 or "(the spec has no sha256)"
        verdict = "matches the known upstream file" if digest == spec.sha256 else f"differs from {known}"
        print(f"sha256 of the CSV: {digest} ({verdict})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for line in report_lines(spec, raw):
            print(line, flush=True)


def main(argv: list[str]) -> None:
    """Run `genre-torch data ...`."""
    args = parsers.data().parse_args(argv)
    if args.command == "download":
        download(args)
    else:
        check(args)
