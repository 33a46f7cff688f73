"""Parity of the Spark engine with the pandas engine (Spark local[2], one session for the module)."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_torch.core.data.datasets import SPECS
from genre_torch.core.data.prepared import PreparedData, compare
from genre_torch.core.data.split import split_indices
from genre_torch.core.data.streaming import table_arrays
from genre_torch.tools.prepare import prepare
from tests.conftest import make_music_genre, make_spotify_tracks, unavailable


def java_major() -> int:
    """Major version of the `java` on the path (0 without one)."""
    if shutil.which("java") is None:
        return 0
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=60)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if found is None:
        return 0
    return int(found.group(2) or 0) if found.group(1) == "1" else int(found.group(1))  # "1.8" is Java 8


pytest.importorskip("pyspark")  # the [spark] extra
if java_major() < 17:
    unavailable("the Spark tests need Java 17+ (Debian: apt-get install default-jre-headless)")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def spark():
    """One local[2] session for the whole module (starting the JVM is the slow part)."""
    from genre_torch.tools.spark_engine import session

    spark = session("local[2]")
    yield spark
    spark.stop()


def quirky(name: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Synthetic raw data plus quirks both engines must treat alike; returns cleaned-row positions of some."""
    spec = SPECS[name]
    raw = make_music_genre(n=300) if name == "music_genre" else make_spotify_tracks(n=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = spec.clean(raw)[spec.target].to_numpy()
    splits = split_indices(labels)
    kept = raw.index[~raw.isna().all(axis=1)]
    kept = (
        kept[~pd.Index(kept).isin(kept[raw.loc[kept].duplicated(subset=list(spec.dedupe_on))])]
        if spec.dedupe_on
        else kept
    )
    rows = {"unseen": int(splits["test"][0]), "missing": int(splits["val"][0]), "na": int(splits["train"][0])}
    raw = raw.astype({c: object for c in raw.columns})
    cat = spec.categorical[-1]
    raw.loc[kept[rows["unseen"]], cat] = "Z"  # a category training never saw: the all-zero block
    raw.loc[kept[rows["missing"]], cat] = np.nan  # a missing category: the all-zero block too
    raw.loc[kept[rows["na"]], "loudness"] = "n/a"  # a pandas NA string: imputed
    raw.loc[kept[int(splits["train"][1])], spec.target] = f"  {labels[splits['train'][1]]} "  # stripped
    raw.loc[kept[int(splits["train"][2])], "energy"] = "  0.5"  # whitespace around a number
    raw.loc[kept[int(splits["train"][3])], "loudness"] = "inf"  # non-finite and huge values: missing in both
    raw.loc[kept[int(splits["train"][4])], "tempo"] = "1e308"
    raw.loc[kept[int(splits["val"][1])], "danceability"] = "-Infinity"
    return raw, rows


@pytest.mark.parametrize("name", ["music_genre", "spotify_tracks"])
def test_spark_matches_pandas(tmp_path: Path, name: str) -> None:
    raw, rows = quirky(name)
    csv = tmp_path / ("in.csv.gz" if name == "spotify_tracks" else "in.csv")
    raw.to_csv(csv, index=name == "spotify_tracks")
    out = {e: prepare(SPECS[name], csv, tmp_path / e, e, master="local[2]") for e in ("pandas", "spark")}
    result = compare(tmp_path / "pandas", tmp_path / "spark")
    assert result["max_abs_diff"] <= 1e-6, result
    assert all(result[f"{s}_same_rows"] and result[f"{s}_same_labels"] for s in ("train", "val", "test"))
    assert result["same_vocab_classes"] and result["max_rel_state_diff"] < 1e-9
    assert "Z" not in out["spark"]["preprocessor"]["vocab"][SPECS[name].categorical[-1]]
    import pyarrow.parquet as pq

    data = PreparedData(tmp_path / "spark")
    width = len(data.preprocessor.vocab[SPECS[name].categorical[-1]])
    for split, key in (("test", "unseen"), ("val", "missing")):
        ids, _, x = table_arrays(pq.read_table(tmp_path / "spark" / split))
        assert not x[ids == rows[key], -width:].any()  # the last categorical's one-hot block is all zero
        assert x[ids != rows[key], -width:].sum(axis=1).min() == 1.0


def test_pandas_mapping_follows_read_csv_types() -> None:
    from genre_torch.core.data.datasets import to_category
    from genre_torch.tools.spark_engine import pandas_mapping

    assert pandas_mapping(["true", "False"], False, to_category) == {"true": "True", "False": "False"}
    assert pandas_mapping(["3.0", "4"], True, to_category) == {"3.0": "3", "4": "4"}
    assert pandas_mapping(["1", "2"], True, lambda s: s.astype(str)) == {"1": "1.0", "2": "2.0"}
    assert pandas_mapping(["a", ' "b" '], False, to_category) == {"a": "a", ' "b" ': '"b"'}
