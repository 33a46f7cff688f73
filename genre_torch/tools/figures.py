"""Figures of the reports: a row-normalised confusion matrix that stays legible for 114 genres, a bar chart."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import leaves_list, linkage

LABEL_PT = 14  # tick labels of the bar chart: readable once TensorBoard scales the image to its card


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


def bars(
    names: Sequence[str], values: Sequence[float], errors: Sequence[float], title: str, xlabel: str, top: int = 20
) -> Figure:
    """Horizontal bar chart of the `top` largest values, largest on top, legible at TensorBoard's card size.

    A card shows an image about 500 pixels wide: the figure is 6.4 inches (640 pixels at 100 dpi) wide, labels are
    14 pt (long ones shortened), one bar every 0.42 inch; the rest of the values are counted in the title.
    """
    order = np.argsort(values)[::-1][:top][::-1]  # barh draws the first bar at the bottom
    shown = [n if len(n) <= 24 else n[:22] + "…" for n in np.asarray(names, dtype=str)[order]]
    fig = Figure(figsize=(6.4, max(3.0, 0.42 * len(order) + 1.6)), dpi=100)
    ax = fig.add_subplot()
    ax.barh(range(len(order)), np.asarray(values)[order], xerr=np.asarray(errors)[order], color="tab:blue")
    ax.set_yticks(range(len(order)), shown)
    ax.tick_params(axis="both", labelsize=LABEL_PT)
    ax.set_xlabel(xlabel, fontsize=LABEL_PT - 2)
    left = len(names) - len(order)
    title += f" (top {len(order)}; {left} more in the CSV)" if left else ""
    ax.set_title("\n".join(textwrap.wrap(title, 56)), fontsize=LABEL_PT - 1)
    ax.axvline(0.0, color="black", linewidth=0.8)
    fig.tight_layout()
    return fig
