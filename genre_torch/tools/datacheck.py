"""`genre-torch data check`: validate a CSV against its DatasetSpec and summarise what cleaning will do."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from genre_torch.core.data.datasets import SPECS, DatasetSpec, to_category
from genre_torch.core.data.datasets.cleaning import NON_FINITE, UNPARSEABLE, to_numeric
from genre_torch.core.data.datasets.leakage import leakage_lines


def guess_spec(path: Path, frame: pd.DataFrame) -> DatasetSpec:
    """The spec whose file names match `path`, else the one whose target column the file has."""
    for spec in SPECS.values():
        if path.name in spec.candidate_files():
            return spec
    for spec in SPECS.values():
        if spec.target in frame.columns:
            return spec
    return next(iter(SPECS.values()))  # check_columns then names what is missing


def row_drops(spec: DatasetSpec, raw: pd.DataFrame) -> dict[str, int]:
    """How many rows each cleaning rule drops, applied in DatasetSpec.clean's order."""
    empty = raw.isna().all(axis=1)
    rest = raw[~empty]
    unlabeled = rest[spec.target].isna()
    rest = rest[~unlabeled]
    rest = rest.assign(**{spec.target: rest[spec.target].astype(str).str.strip()})
    dupes = rest.duplicated(subset=list(spec.dedupe_on)) if spec.dedupe_on else pd.Series(False, index=rest.index)
    dedupe = f"duplicate ({', '.join(spec.dedupe_on)}) rows" if spec.dedupe_on else "duplicate rows (no dedupe rule)"
    return {
        "rows in file": len(raw),
        "all-empty rows (dropped)": int(empty.sum()),
        f"rows without a {spec.target} label (dropped)": int(unlabeled.sum()),
        f"{dedupe}" + (" (dropped)" if spec.dedupe_on else ""): int(dupes.sum()),
        "rows kept for training": int(len(rest) - dupes.sum()),
    }


def column_table(spec: DatasetSpec, raw: pd.DataFrame) -> pd.DataFrame:
    """Missing, unparseable, non-finite and out-of-range values per feature column, counted on the non-empty rows."""
    raw = raw[~raw.isna().all(axis=1)]
    rows = []
    for col in spec.features:
        values = raw[col]
        missing = int(values.isna().sum())
        unparseable = non_finite = out_of_range = 0
        if col in spec.numeric:
            parsed, counts = to_numeric(values)
            unparseable, non_finite = counts[UNPARSEABLE], counts[NON_FINITE]
            if col in spec.valid_ranges:
                lo, hi = spec.valid_ranges[col]
                out_of_range = int((parsed.notna() & ~parsed.between(lo, hi)).sum())
            distinct = parsed.nunique()
        else:
            distinct = to_category(values).nunique()
        kind = "numeric" if col in spec.numeric else "categorical"
        imputed = missing + unparseable + non_finite + out_of_range
        rows.append((col, kind, missing, unparseable, non_finite, out_of_range, imputed, distinct))
    columns = ["column", "kind", "missing", "unparseable", "non-finite", "out of range", "imputed", "distinct"]
    return pd.DataFrame(rows, columns=columns).set_index("column")


def summary(spec: DatasetSpec, raw: pd.DataFrame) -> str:
    """The whole report as text: row drops, per-column problems, genres, duplicate tracks."""
    return "\n".join(report_lines(spec, raw))


def report_lines(spec: DatasetSpec, raw: pd.DataFrame) -> Iterator[str]:
    """The report line by line; a file that training would refuse raises its error after the column table."""
    spec = spec.resolve(raw)
    spec.check_columns(raw)
    yield f"dataset: {spec.name}  columns: {len(raw.columns)} (all {len(spec.features) + 1} required present)"
    yield from (f"  {k:<48} {v:>9,}" for k, v in row_drops(spec, raw).items())
    yield ""
    yield "feature columns (non-empty rows; 'imputed' = missing after cleaning, filled with the train median"
    yield "or the all-zero one-hot; non-finite = inf, nan or |x| > 1e30):"
    yield column_table(spec, raw).to_string()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = spec.clean(raw)
    lines = []
    counts = clean[spec.target].value_counts().sort_index()
    lines += ["", f"genres ({spec.target}): {len(counts)}, rows per genre min {counts.min():,} / max {counts.max():,}"]
    per_line = 4
    cells = [f"{name[:22]:<22} {n:>6,}" for name, n in counts.items()]
    lines += ["  " + "   ".join(cells[i : i + per_line]) for i in range(0, len(cells), per_line)]
    if spec.id_columns:
        ids = clean[spec.id_columns[0]]
        repeated = ids[ids.duplicated(keep=False) & ids.notna()]
        lines += [
            "",
            f"duplicate tracks: {repeated.nunique():,} {spec.id_columns[0]} value(s) appear on "
            f"{len(repeated):,} kept rows "
            f"({ids.nunique():,} distinct ids in {len(ids):,} rows)",
        ]
        if len(repeated):
            labels = clean.loc[repeated.index].groupby(spec.id_columns[0])[spec.target].nunique()
            lines += [f"  of these, {int((labels > 1).sum()):,} carry more than one genre (same features, other label)"]
    found = leakage_lines(clean, list(spec.features), spec.target)
    lines += ["", "columns that give the genre away, and repeated feature rows:"]
    lines += [f"  {line}" for line in found or ["none"]]
    yield from lines
