"""Figures of the reports: a row-normalised confusion matrix that stays legible for 114 genres, a bar chart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import leaves_list, linkage


def confusion_order(cm: np.ndarray) -> np.ndarray:
    """Genre order that puts genres confused with each other next to each other (hierarchical clustering)."""
    if len(cm) < 3:
        return np.arange(len(cm))
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    mixed = (rates + rates.T) / 2  # symmetric: how often two genres are taken for each other
    return leaves_list(linkage(mixed, method="average", optimal_ordering=True))


def confusion(cm: np.ndarray, classes: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix (recall per true genre, in %), genres ordered by confusion clusters.

    Up to 20 genres the figure is drawn small, with large text and the share in every cell, so that it is
    legible at the size of a TensorBoard image card; more genres get ~0.22 inch per genre (114 genres:
    about 2,700 pixels at 100 dpi), legible at actual size.
    """
    order = confusion_order(cm)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    rates = rates[np.ix_(order, order)]
    names = [classes[i] for i in order]
    n = len(names)
    small = n <= 20
    side = 0.34 * n + 1.6 if small else 0.22 * n + 2.0
    fig = Figure(figsize=(side + 0.3, side), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(rates, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    font = 11 if small else 6
    ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    ax.set_xlabel("predicted genre", fontsize=font)
    ax.set_ylabel("true genre", fontsize=font)
    ax.set_title("test recall % (row-normalised)", fontsize=font + 1)
    if small:
        for i in range(n):
            for j in range(n):
                color = "black" if rates[i, j] > 0.5 else "white"
                ax.text(j, i, f"{100 * rates[i, j]:.0f}", ha="center", va="center", fontsize=10, color=color)
    fig.tight_layout(pad=0.3)
    return fig


def bars(names: Sequence[str], values: Sequence[float], errors: Sequence[float], title: str, xlabel: str) -> Figure:
    """Horizontal bar chart, largest value on top."""
    order = np.argsort(values)
    fig = Figure(figsize=(8, max(3.0, 0.35 * len(names) + 1)))
    ax = fig.add_subplot()
    ax.barh(np.asarray(names)[order], np.asarray(values)[order], xerr=np.asarray(errors)[order], color="tab:blue")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.axvline(0.0, color="black", linewidth=0.8)
    fig.tight_layout()
    return fig
