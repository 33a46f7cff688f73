"""TensorBoard tags: a run's curves (train/, val/) are the chart groups TensorBoard opens; one-off results follow.

TensorBoard's Time Series dashboard, its first screen, sorts chart groups (a tag's text before the first "/") by name
and opens the first two. The test split's values and figures (single points at the end of a run), a permutation
importance and a fit's epoch count would sort before `train` and `val` as `test/`, `importance/` and `fit/`; written
as `z_test/`, `z_importance/` and `z_fit/` they sort after them. Elsewhere (`trainer.test`'s results, callbacks, the
console, other loggers) the metrics keep their names.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.loggers import TensorBoardLogger

LAST = ("test", "importance", "fit")  # chart groups written after the curves (fit: a run's epoch and step counts)


def board_tag(name: str) -> str:
    """The TensorBoard tag of a metric or figure: test/acc -> z_test/acc, importance/x -> z_importance/x."""
    group, slash, _ = name.partition("/")
    return f"z_{name}" if slash and group in LAST else name


class RunLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger writing each metric under its `board_tag`."""

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """As TensorBoardLogger's, the test split's metrics under z_test/."""
        super().log_metrics({board_tag(k): v for k, v in metrics.items()}, step)
