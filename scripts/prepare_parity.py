"""Prepare a dataset with both engines and print their parity: python scripts/prepare_parity.py NAME [--master URL]."""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

from genre_torch.core.data import find_data_file
from genre_torch.core.data.datasets import SPECS, get_spec
from genre_torch.core.data.prepared import compare
from genre_torch.tools.prepare import prepare


def main() -> None:
    """Run pandas and spark `prepare` on the same CSV and print rows, timings and the differences."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", choices=sorted(SPECS))
    parser.add_argument("--path", default=None, help="CSV (default: as training finds it)")
    parser.add_argument("--master", default="local[*]", help="Spark master")
    parser.add_argument("--keep", type=Path, default=None, help="keep both folders under this folder")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spec = get_spec(args.dataset)
    path = find_data_file(spec, args.path)
    root = args.keep or Path(tempfile.mkdtemp(prefix="genre-torch-parity-"))
    folders = {}
    for engine in ("pandas", "spark"):
        folders[engine] = root / f"{spec.name}-{engine}"
        info = prepare(spec, path, folders[engine], engine, overwrite=True, master=args.master)
        print(f"{spec.name} {engine}: {info['seconds']} s -> {folders[engine]}")
    result = compare(folders["pandas"], folders["spark"])
    for key, value in result.items():
        print(f"  {key}: {value}")
    ok = result["max_abs_diff"] <= 1e-6 and result["same_vocab_classes"]
    ok = ok and all(result[f"{s}_same_rows"] and result[f"{s}_same_labels"] for s in ("train", "val", "test"))
    print(f"parity {'OK' if ok else 'FAILED'} (max abs difference {result['max_abs_diff']:.3g}, limit 1e-6)")


if __name__ == "__main__":
    main()
