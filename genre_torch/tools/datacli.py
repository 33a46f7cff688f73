"""`genre-torch data download|check`: get a dataset verified, or inspect a CSV without training."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from genre_torch.core.data import find_data_file, read_csv
from genre_torch.core.datasets import SPECS, get_spec
from genre_torch.core.errors import GenreTorchError
from genre_torch.tools import acquire
from genre_torch.tools.datacheck import guess_spec, summary


def build_parser() -> argparse.ArgumentParser:
    """The `genre-torch data` argument parser."""
    parser = argparse.ArgumentParser(prog="genre-torch data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    down = sub.add_parser("download", help="download a dataset and verify its sha256")
    down.add_argument("name", choices=sorted(SPECS), help="dataset name")
    down.add_argument("--dest", type=Path, default=None, help="folder (default: $GENRE_TORCH_DATA_DIR, else ./data)")
    down.add_argument("--file", type=Path, default=None, help="verify and place a file you downloaded yourself")
    down.add_argument("--retries", type=int, default=2, help="download attempts after a failed one (default 2)")
    down.add_argument("--no-progress", action="store_true", help="no progress bar")
    check = sub.add_parser("check", help="validate a CSV against its dataset spec and summarise it")
    check.add_argument("target", help="dataset name (looked up like training does) or path of a CSV")
    check.add_argument("--dataset", choices=sorted(SPECS), default=None, help="spec to check PATH against")
    check.add_argument("--no-hash", action="store_true", help="skip the sha256 comparison")
    return parser


def main(argv: list[str]) -> None:
    """Run `genre-torch data ...`."""
    args = build_parser().parse_args(argv)
    if args.command == "download":
        spec = get_spec(args.name)
        dest = args.dest or acquire.default_dest()
        if args.file is not None:
            path = acquire.place_file(spec, args.file, dest)
        else:
            path = acquire.download(spec, dest, retries=args.retries, progress=not args.no_progress)
        print(f"{spec.name}: {path} (sha256 verified: {spec.sha256})")
        return
    if args.target in SPECS:
        path = find_data_file(get_spec(args.target))
    elif Path(args.target).is_file():
        path = Path(args.target)
    else:
        raise GenreTorchError(f"{args.target} is neither a dataset ({', '.join(SPECS)}) nor a file")
    raw = read_csv(path)
    spec = get_spec(args.dataset) if args.dataset else SPECS.get(args.target) or guess_spec(path, raw)
    print(f"file: {path}")
    if not args.no_hash:
        digest = acquire.file_sha256(path)
        verdict = "matches the known upstream file" if digest == spec.sha256 else f"differs from {spec.sha256}"
        print(f"sha256 of the CSV: {digest} ({verdict})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        print(summary(spec, raw))
