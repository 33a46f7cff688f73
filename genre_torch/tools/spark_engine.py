"""The Spark engine of `genre-torch prepare`: the DatasetSpec's cleaning, the canonical split and the
Preprocessor's fit/transform, written with the pyspark DataFrame API and pyspark.ml, value for value."""

from __future__ import annotations

import io
import operator
import os
import shutil
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genre_torch.core.data.datasets import DatasetSpec, to_category
from genre_torch.core.data.datasets.cleaning import HUGE
from genre_torch.core.data.split import split_indices
from genre_torch.core.errors import GenreTorchError

try:
    from pandas._libs.parsers import STR_NA_VALUES  # the strings pandas.read_csv reads as missing
except ImportError:  # pragma: no cover - a pandas that moved it
    STR_NA_VALUES = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"}
    STR_NA_VALUES |= {"<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
SPLITS = ("train", "val", "test")


def session(master: str | None = None, conf: dict[str, str] | None = None) -> Any:
    """A SparkSession: local[*] by default, or the cluster at `master` (spark://, yarn, k8s://...)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise GenreTorchError("the spark engine needs pyspark and Java 17+: pip install 'genre_torch[spark]'") from None
    master = master or os.environ.get("SPARK_MASTER") or "local[*]"
    builder = SparkSession.builder.master(master).appName("genre-torch prepare")
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true").config(
        "spark.ui.showConsoleProgress", "false"
    )
    if master.startswith("local"):
        builder = builder.config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "8")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def pandas_mapping(values: list[str], has_null: bool, canon: Any) -> dict[str, str | None]:
    """raw text -> the value pandas ends with: read_csv's type inference on the distinct values, then `canon`."""
    text = "v\n" + "".join('"' + v.replace('"', '""') + '"\n' for v in values) + ("\n" if has_null else "")
    parsed = pd.read_csv(io.StringIO(text), skip_blank_lines=False, low_memory=False)["v"]
    out = canon(parsed.iloc[: len(values)])
    return {v: (None if pd.isna(o) else str(o)) for v, o in zip(values, out, strict=True)}


def _apply_mapping(column: Any, mapping: dict[str, str | None]) -> Any:
    """A Spark column that maps raw text through `mapping` (small: categorical values and genre names)."""
    from pyspark.sql import functions as F

    if not mapping:
        return F.lit(None).cast("string")
    pairs = [F.lit(x) for k, v in mapping.items() for x in (k, v)]
    return F.create_map(*pairs)[column]


def clean(spec: DatasetSpec, raw: Any) -> Any:
    """DatasetSpec.clean(training=True) on a Spark DataFrame of raw strings with a file-order column `_line`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    data_cols = [c for c in raw.columns if c != "_line"]
    na = F.array(*[F.lit(v) for v in sorted(STR_NA_VALUES)])
    df = raw.select(
        "_line", *[F.when(F.array_contains(na, F.col(c)), None).otherwise(F.col(c)).alias(c) for c in data_cols]
    )
    small = [spec.target, *spec.categorical]  # few distinct values: mapped through pandas itself
    sets = [F.collect_set(c).alias(c) for c in small]
    stats = df.agg(*sets, *[F.count_if(F.col(c).isNull()).alias(f"{c}#null") for c in small]).first()
    df = df.filter(reduce(operator.or_, [F.col(c).isNotNull() for c in data_cols]))  # drop all-empty rows
    df = df.filter(F.col(spec.target).isNotNull())
    target_map = pandas_mapping(
        stats[spec.target], stats[f"{spec.target}#null"] > 0, lambda s: s.astype(str).str.strip()
    )
    df = df.withColumn(spec.target, _apply_mapping(F.col(spec.target), target_map))
    if spec.dedupe_on:
        first = Window.partitionBy(*spec.dedupe_on).orderBy("_line")
        df = df.withColumn("_n", F.row_number().over(first)).filter("_n = 1").drop("_n")
    for col in spec.numeric:
        value = F.col(col).try_cast("double")
        # as pandas cleaning does: NaN, infinities and |x| > HUGE (overflow placeholders) become missing
        df = df.withColumn(col, F.when(F.isnan(value) | (F.abs(value) > HUGE), None).otherwise(value))
    for col, (lo, hi) in spec.valid_ranges.items():
        df = df.withColumn(col, F.when(F.col(col).between(lo, hi), F.col(col)))
    for col in spec.categorical:
        df = df.withColumn(
            col, _apply_mapping(F.col(col), pandas_mapping(stats[col], stats[f"{col}#null"] > 0, to_category))
        )
    return df


def read_raw(spark: Any, path: Path) -> Any:
    """The CSV as strings, as pandas parses it (quotes doubled, quoted newlines), with the file-order `_line`."""
    from pyspark.sql import functions as F

    df = spark.read.csv(str(path), header=True, inferSchema=False, multiLine=True, escape='"', encoding="UTF-8")
    return df.withColumn("_line", F.monotonically_increasing_id())  # increases in file order (one file)


def assign_splits(spark: Any, spec: DatasetSpec, df: Any, fractions: tuple[float, float], seed: int) -> Any:
    """row_id = position among the cleaned rows; split from genre_torch.core.data.split_indices on the driver."""
    from pyspark.sql import functions as F

    keys = df.select("_line", spec.target).toPandas().sort_values("_line", kind="stable")
    splits = split_indices(keys[spec.target].to_numpy(dtype=object), fractions[0], fractions[1], seed)
    which = np.empty(len(keys), dtype=object)
    for name, idx in splits.items():
        which[idx] = name
    table = pd.DataFrame({"_line": keys["_line"].to_numpy(), "row_id": np.arange(len(keys)), "split": which})
    return (
        df.join(spark.createDataFrame(table), on="_line")
        .drop("_line")
        .withColumn("row_id", F.col("row_id").cast("long"))
    )


def fit(spec: DatasetSpec, train: Any) -> dict[str, Any]:
    """The Preprocessor's state from training rows: exact medians, center = mean and scale = population std (standard
    scaling), sorted vocabularies."""
    from pyspark.sql import functions as F

    sets = [F.collect_set(c) for c in (*spec.categorical, spec.target)]  # one pass: medians and vocabularies
    row = train.agg(*[F.percentile(c, 0.5).alias(c) for c in spec.numeric], *sets).first()
    median = [0.0 if row[c] is None else float(row[c]) for c in spec.numeric]
    filled = [F.coalesce(F.col(c), F.lit(m)) for c, m in zip(spec.numeric, median, strict=True)]
    moments = train.agg(*[F.avg(f) for f in filled], *[F.stddev_pop(f) for f in filled]).first()
    n = len(spec.numeric)
    center, scale = [float(v) for v in moments[:n]], [float(v) if v > 0 else 1.0 for v in moments[n:]]
    vocab = {c: sorted(row[len(spec.numeric) + i]) for i, c in enumerate(spec.categorical)}
    classes = sorted(row[-1])
    return {
        "numeric": list(spec.numeric),
        "categorical": list(spec.categorical),
        "median": median,
        "center": center,
        "scale": scale,
        "vocab": vocab,
        "classes": classes,
    }


def transform(spec: DatasetSpec, df: Any, state: dict[str, Any]) -> Any:
    """Columns row_id, split, label, features (array<float>): standardised numerics, then one-hot blocks."""
    from pyspark.ml.feature import OneHotEncoder, StringIndexerModel, VectorAssembler
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    for c, m, center, scale in zip(spec.numeric, state["median"], state["center"], state["scale"], strict=True):
        df = df.withColumn(f"{c}#z", (F.coalesce(F.col(c), F.lit(m)) - F.lit(center)) / F.lit(scale))
    cats = list(spec.categorical)
    idx = [f"{c}#i" for c in cats]
    # index k (unseen or missing) is "invalid" for an encoder told there are k categories: with
    # handleInvalid="keep" it gets an extra last slot, which dropLast removes: the all-zero vector
    indexer = StringIndexerModel.from_arrays_of_labels(
        [state["vocab"][c] for c in cats], inputCols=cats, outputCols=idx, handleInvalid="keep"
    )
    labels = StringIndexerModel.from_labels(
        state["classes"], inputCol=spec.target, outputCol="label#d", handleInvalid="error"
    )
    df = labels.transform(indexer.transform(df))
    sizes = [len(state["vocab"][c]) for c in cats]
    df = df.select(
        "*",
        *[
            F.col(i).alias(f"{i}x", metadata={"ml_attr": {"type": "nominal", "num_vals": k}})
            for i, k in zip(idx, sizes, strict=True)
        ],
    )
    onehot = OneHotEncoder(
        inputCols=[f"{i}x" for i in idx], outputCols=[f"{c}#v" for c in cats], dropLast=True, handleInvalid="keep"
    )
    df = onehot.fit(df).transform(df)
    assembler = VectorAssembler(inputCols=[f"{c}#z" for c in spec.numeric] + [f"{c}#v" for c in cats], outputCol="v")
    df = assembler.transform(df)
    return df.select(
        "row_id",
        "split",
        F.col("label#d").cast("long").alias("label"),
        vector_to_array("v", "float32").alias("features"),
    )


def prepare(
    spec: DatasetSpec,
    path: Path,
    out: Path,
    fractions: tuple[float, float],
    seed: int,
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Clean, split, fit on train, encode and write out/{train,val,test} as Parquet; return the fitted state."""
    from pyspark.sql import functions as F

    spark = session(master, conf)
    raw = read_raw(spark, path.resolve())
    missing = [c for c in (*spec.features, spec.target, *spec.dedupe_on) if c not in raw.columns]
    if missing:
        raise GenreTorchError(f"{spec.name}: the CSV lacks required column(s) {', '.join(dict.fromkeys(missing))}")
    df = assign_splits(spark, spec, clean(spec, raw), fractions, seed).cache()
    state = fit(spec, df.filter(df.split == "train"))
    # rows are stored in a hashed (random, reproducible) order, so that every row group mixes the genres
    # of a file sorted by genre and a streamed batch looks like a shuffled one (streaming.py)
    mixed = F.xxhash64("row_id")
    encoded = transform(spec, df, state).repartition(mixed).sortWithinPartitions("split", mixed)
    encoded.write.partitionBy("split").parquet(str(out.resolve() / "parts"))  # one job writes all splits
    for name in SPLITS:
        (out / "parts" / f"split={name}").rename(out / name)
    shutil.rmtree(out / "parts")
    df.unpersist()
    return state
