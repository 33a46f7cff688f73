"""Column-level cleaning: numbers (unparseable, non-finite and absurd values -> missing) and canonical categories."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pandas as pd

# |x| above this is no measurement of a song, only overflow or a placeholder such as 1e308: such values are
# treated like inf. Below it the float64 statistics (center, scale) and the standardised float32 inputs stay finite.
HUGE = 1e30
NAN_WORDS = frozenset({"nan", "+nan", "-nan"})  # text that parses as NaN: counted with the non-finite values
UNPARSEABLE, NON_FINITE = "unparseable", "non-finite"


class DataWarning(UserWarning):
    """A one-line note about values that cleaning turned into missing ones (counted per column)."""


def to_numeric(values: pd.Series) -> tuple[pd.Series, Counter]:
    """Parse a column as float64; unparseable, non-finite and |x| > HUGE values become NaN, counted by kind."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64"), Counter()
    parsed = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    failed = np.isnan(parsed) & values.notna().to_numpy()
    nan_words = int(values[failed].astype(str).str.strip().str.lower().isin(NAN_WORDS).sum()) if failed.any() else 0
    with np.errstate(invalid="ignore"):
        usable = np.abs(parsed) <= HUGE  # False for NaN and inf
    counts = Counter({UNPARSEABLE: int(failed.sum()) - nan_words})
    counts[NON_FINITE] = int((~np.isnan(parsed) & ~usable).sum()) + nan_words
    return pd.Series(np.where(usable, parsed, np.nan), index=values.index, name=values.name), +counts


def parses_as_numbers(values: pd.Series) -> bool:
    """Whether most (over half) of a column's present values are numbers: the rule of `numeric: auto`."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return bool(values.notna().any())
    present = values.dropna()
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").notna().sum() * 2 > len(present)


def range_label(lo: float, hi: float) -> str:
    """'out of range [lo, hi]' with whole numbers written without '.0'."""

    def fmt(v: float) -> str:
        return str(int(v)) if np.isfinite(v) and float(v).is_integer() else str(v)

    return f"out of range [{fmt(lo)}, {fmt(hi)}]"


def warn_problems(dataset: str, problems: dict[str, Counter]) -> None:
    """One DataWarning line per column with the counts of values that cleaning turned into missing ones."""
    for column, counts in problems.items():
        parts = [f"{n} {kind}" for kind, n in counts.items() if n]
        if parts:
            first, _, kind = parts[0].partition(" ")
            note = (
                ", ".join([f"{first} value(s) {kind}", *parts[1:]]) + " -> missing (imputed with the training median)"
            )
            warnings.warn(f"{dataset}: column {column}: {note}", DataWarning, stacklevel=3)


def to_category(values: pd.Series) -> pd.Series:
    """Canonical category strings: whole numbers lose their '.0', text is stripped, missing stays NaN."""

    def canon(v: object) -> object:
        if isinstance(v, float) and np.isnan(v):
            return np.nan
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and float(v).is_integer():
            return str(int(v))
        text = str(v).strip()
        try:
            number = float(text)
        except ValueError:
            return text or np.nan
        return str(int(number)) if number.is_integer() else text

    if values.dtype == object:  # mixed Python objects: canonicalise one by one (True and 1 must stay apart)
        return values.astype(object).map(canon, na_action="ignore")
    codes, uniques = pd.factorize(values)  # one dtype: canonicalise each distinct value once (fast on big files)
    mapped = np.array([canon(v) for v in uniques.astype(object)] + [np.nan], dtype=object)
    return pd.Series(mapped[codes], index=values.index, name=values.name)  # code -1: missing
