"""`genre-torch prepare`: clean, split, fit and encode a dataset once, written as Parquet per split + JSON state.

Two engines give the same result: pandas (the GenreDataModule path, in memory) and spark (pyspark,
for data larger than one machine; see genre_torch/spark_engine.py).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from genre_torch.core.data import GenreDataModule, find_data_file
from genre_torch.core.data.datasets import DatasetSpec, get_spec
from genre_torch.core.data.prepared import FORMAT, SPLITS, STATE_FILE, state_to_json
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training.safe_files import remove_stale_temps, temp_name, write_error
from genre_torch.tools import parsers

ROW_GROUP_ROWS = 65536


def features_table(row_id: np.ndarray, label: np.ndarray, x: np.ndarray) -> Any:
    """A pyarrow table with the prepared columns row_id, label, features (list<float32>)."""
    import pyarrow as pa

    values = pa.array(np.ascontiguousarray(x, dtype=np.float32).reshape(-1))
    features = pa.ListArray.from_arrays(pa.array(np.arange(0, x.size + 1, max(x.shape[1], 1), dtype=np.int32)), values)
    return pa.table({"row_id": row_id.astype(np.int64), "label": label.astype(np.int64), "features": features})


def prepare_pandas(spec: DatasetSpec, path: Path, out: Path, fractions: tuple[float, float], seed: int) -> dict:
    """The GenreDataModule's own cleaning, split and Preprocessor, written as Parquet; returns the state."""
    import pyarrow.parquet as pq

    dm = GenreDataModule(spec.name, str(path), test_fraction=fractions[0], val_fraction=fractions[1], split_seed=seed)
    dm.load()
    for split in SPLITS:
        x, y = dm.tensors[split]
        (out / split).mkdir(parents=True)
        order = np.random.default_rng(seed).permutation(len(y))  # random row order: row groups mix the genres
        table = features_table(dm.splits[split][order], y.numpy()[order], x.numpy()[order])
        pq.write_table(table, out / split / "part-00000.parquet", row_group_size=ROW_GROUP_ROWS)
    return state_to_json(dm.preprocessor.state_dict())


def check_output(output: Path, source: Path, overwrite: bool) -> None:
    """Refuse to replace anything but a prepared folder, or a folder holding the input file."""
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise GenreTorchError(f"{output} exists; pass --overwrite to replace it or choose another --output")
        if output.is_symlink() or not output.is_dir() or not (output / STATE_FILE).is_file():
            raise GenreTorchError(
                f"{output} is not a prepared folder (no {STATE_FILE} in it); --overwrite only replaces "
                "the output of an earlier `genre-torch prepare`: choose another --output"
            )
    if output.resolve() in source.resolve().parents:
        raise GenreTorchError(f"--output {output} holds the input {source}; choose another --output")


def check_finite(folder: Path, state: dict[str, Any]) -> None:
    """Refuse output whose fitted statistics or feature values are not all finite (NaN, inf)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for name in ("median", "center", "scale"):
        bad = [c for c, v in zip(state["numeric"], state[name], strict=True) if not np.isfinite(v)]
        if bad:
            raise GenreTorchError(
                f"the fitted {name} of column {bad[0]} is non-finite (NaN or inf): the data holds inf or huge values"
            )
    for part in sorted(folder.glob("*/*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(columns=["features"]):
            values = pc.list_flatten(batch.column(0))
            if not pc.all(pc.is_finite(values)).as_py() or values.null_count:
                raise GenreTorchError(
                    f"the prepared {part.parent.name} split would hold non-finite feature values (NaN or inf); "
                    "the data holds inf or huge values: clean them or treat them as missing"
                )


def prepare(
    spec: DatasetSpec,
    path: Path,
    output: Path,
    engine: str = "pandas",
    fractions: tuple[float, float] = (0.2, 0.1),
    seed: int = 42,
    overwrite: bool = False,
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write the prepared folder atomically (a temporary folder renamed at the end); return its JSON info."""
    check_output(output, path, overwrite)
    tmp = temp_name(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(output.parent)  # of killed runs
        tmp.mkdir()
        started = time.perf_counter()
        if engine == "pandas":
            state = prepare_pandas(spec, path, tmp, fractions, seed)
        elif engine == "spark":
            from genre_torch.tools import spark_engine

            state = spark_engine.prepare(spec, path, tmp, fractions, seed, master, conf)
        else:
            raise GenreTorchError(f"unknown engine {engine!r}; known: pandas, spark")
        check_finite(tmp, state)
        info = {
            "format": FORMAT,
            "dataset": spec.name,
            "engine": engine,
            "source": str(path),
            "split": {"test_fraction": fractions[0], "val_fraction": fractions[1], "seed": seed},
            "seconds": round(time.perf_counter() - started, 1),
            "preprocessor": state,
        }
        (tmp / STATE_FILE).write_text(json.dumps(info, indent=1))
        old = temp_name(output)
        if output.exists():
            output.rename(old)  # moved aside, not deleted, until the new folder is in place
        try:
            tmp.rename(output)
        except OSError:
            if old.exists():
                old.rename(output)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise write_error(output, e) from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return info


def main(argv: list[str]) -> None:
    """Run `genre-torch prepare ...`."""
    args = parsers.prepare().parse_args(argv)
    spec = get_spec(args.dataset)
    path = find_data_file(spec, args.path)
    conf = dict(item.split("=", 1) for item in args.spark_conf if "=" in item)
    fractions = (args.test_fraction, args.val_fraction)
    info = prepare(
        spec, path, args.output, args.engine, fractions, args.split_seed, args.overwrite, args.spark_master, conf
    )
    state = info["preprocessor"]
    width = len(state["numeric"]) + sum(len(v) for v in state["vocab"].values())
    print(
        f"{spec.name} ({args.engine}, {info['seconds']} s): {args.output}/{{train,val,test}} "
        f"{len(state['classes'])} classes, {width} features; train with --data.path {args.output}"
    )
