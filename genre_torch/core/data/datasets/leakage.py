"""Columns that nearly give the genre away on their own, and rows whose features repeat: found before training."""

from __future__ import annotations

import numpy as np
import pandas as pd

PROXY_ACCURACY = 0.9  # a column whose values predict the genre this well is a label in disguise, not a feature
MIN_ROWS = 50  # on fewer rows an accuracy says little


def loo_majority_accuracy(values: pd.Series, labels: pd.Series) -> float:
    """Accuracy of predicting each row's label by the majority label of the OTHER rows with its value.

    Rows whose value no other row has (an id, a file name) count as wrong, so a column of unique values scores 0:
    only values that repeat, and so can carry a label to new rows, make a column a proxy of the target.
    """
    codes, _ = pd.factorize(values)  # -1: missing
    labels_codes, _ = pd.factorize(labels)
    kept = codes >= 0
    if not kept.any():
        return 0.0
    v, y = codes[kept].astype(np.int64), labels_codes[kept].astype(np.int64)
    pairs, inverse, counts = np.unique(v * (y.max() + 1) + y, return_inverse=True, return_counts=True)
    n = counts[inverse]  # rows with this row's value and label, itself included
    pair_value = pairs // (y.max() + 1)
    order = np.lexsort((-counts, pair_value))  # by value, the most frequent label first
    value_sorted, count_sorted = pair_value[order], counts[order]
    first = np.r_[True, value_sorted[1:] != value_sorted[:-1]]
    second = np.r_[False, first[:-1]] & ~first
    top, runner_up = np.zeros(v.max() + 1, np.int64), np.zeros(v.max() + 1, np.int64)
    top[value_sorted[first]], runner_up[value_sorted[second]] = count_sorted[first], count_sorted[second]
    # without the row itself its own label has n - 1 votes; it wins when that beats every other label
    other_best = np.where(n == top[v], runner_up[v], top[v])
    return float(((n - 1 > other_best) & (n > 1)).sum()) / len(values)


def prefix(values: pd.Series) -> pd.Series | None:
    """The leading letters of a text column's values (`blues.00000.wav` -> `blues`), or None if not text."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    letters = values.dropna().astype(str).str.extract(r"^([A-Za-z]+)[^A-Za-z]", expand=False)
    return letters.reindex(values.index) if letters.notna().any() else None


def _code_like(values: pd.Series, most: int) -> bool:
    """Whether a numeric column looks like codes (whole numbers, few of them) rather than a measurement.

    A measurement that separates the genres well is a good feature, not a leak; a column of a few whole numbers
    (a genre id) is checked like text.
    """
    present = values.dropna()
    return bool(len(present)) and present.nunique() <= most and bool((present == present.round()).all())


def target_proxies(frame: pd.DataFrame, target: str) -> list[tuple[str, float]]:
    """(description, accuracy) of every column (declared or not) or text prefix that predicts `target` alone.

    Text columns are checked by value and by their leading letters; numeric ones only where they look like codes.
    """
    found: list[tuple[str, float]] = []
    if len(frame) < MIN_ROWS:
        return found
    labels = frame[target]
    codes = 2 * labels.nunique()
    for column in frame.columns:
        values = frame[column]
        if column == target or (pd.api.types.is_numeric_dtype(values) and not _code_like(values, codes)):
            continue
        accuracy = loo_majority_accuracy(values, labels)
        if accuracy >= PROXY_ACCURACY:
            found.append((f"column {column}", accuracy))
            continue
        head = prefix(values)
        if head is not None and (accuracy := loo_majority_accuracy(head, labels)) >= PROXY_ACCURACY:
            found.append((f"the text before the first non-letter of column {column}", accuracy))
    return found


def duplicate_features(frame: pd.DataFrame, features: list[str], target: str) -> tuple[int, int, int]:
    """Rows whose feature values all repeat another row's: (rows, groups of them, groups with several genres)."""
    if not features or frame.empty:
        return 0, 0, 0
    rows = pd.util.hash_pandas_object(frame[features], index=False).to_numpy()
    repeated = pd.Series(rows).duplicated(keep=False).to_numpy()
    if not repeated.any():
        return 0, 0, 0
    groups, _ = pd.factorize(rows[repeated])
    labels, _ = pd.factorize(frame[target].to_numpy()[repeated])
    genres = np.bincount(np.unique(groups * (labels.max() + 1) + labels) // (labels.max() + 1))
    return int(repeated.sum()), len(genres), int((genres > 1).sum())


def leakage_lines(frame: pd.DataFrame, features: list[str], target: str) -> list[str]:
    """One line for each target proxy and one for the duplicate feature rows (none when there are none)."""
    lines = [
        f"{what} predicts {target} alone for {accuracy:.0%} of the rows (the majority {target} of the other rows "
        "with the same value): it gives the label away; drop it or list it under ignore"
        for what, accuracy in target_proxies(frame, target)
    ]
    rows, groups, mixed = duplicate_features(frame, features, target)
    if rows:
        lines.append(
            f"{rows:,} rows repeat the feature values of another row ({groups:,} groups, {mixed:,} of them with more "
            f"than one {target}): a random split can put copies in training and test (--data.split song keeps "
            "them together)"
        )
    return lines
