"""`genre-torch importance`: permutation importance on the test split, one score per original column.

Each original column (a one-hot group such as `key` counts as one) is shuffled across the test
rows before encoding; the importance is the drop in test accuracy, averaged over --repeats shuffles
(sklearn.inspection.permutation_importance). The data module is rebuilt from the checkpoint's saved
data-module settings, so the test rows are the ones the model was tested on.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pytorch_lightning.loggers import TensorBoardLogger
from sklearn.inspection import permutation_importance

from genre_torch.core.compat import data_state
from genre_torch.core.data import GenreDataModule
from genre_torch.core.data.datasets import spec_from_checkpoint_state
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training.board import board_tag
from genre_torch.core.training.runs import claim_evaluation, claim_version, resumed_version
from genre_torch.core.training.safe_files import write_error
from genre_torch.tools import figures, parsers
from genre_torch.tools.predict import Predictor, load_backbone, load_checkpoint


class _Scorer:
    """The minimal estimator permutation_importance needs: predicts class indices of rows."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def fit(self, *_: Any) -> _Scorer:
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        probs = self.predictor.predict_proba(rows).to_numpy()
        bad = int((~np.isfinite(probs).all(axis=1)).sum())
        if bad:
            raise GenreTorchError(
                f"the model gives non-finite probabilities for {bad} of {len(rows)} test rows: the data holds "
                "inf or huge values (clean them) or the checkpoint is broken (retrain)"
            )
        return probs.argmax(1)


def accuracy(estimator: _Scorer, rows: pd.DataFrame, labels: np.ndarray) -> float:
    """Share of rows whose predicted class is the label."""
    return float((estimator.predict(rows) == labels).mean())


def importance(ckpt_path: str, data_path: str | None, repeats: int, seed: int) -> tuple[pd.DataFrame, str, float]:
    """Importance table (column, mean and std accuracy drop), the dataset name and the unpermuted accuracy."""
    ckpt = load_checkpoint(ckpt_path)
    state = data_state(ckpt)
    known = inspect.signature(GenreDataModule).parameters  # skips Lightning's own keys such as _instantiator
    saved = {**(ckpt.get("datamodule_hyper_parameters") or {}), "dataset": spec_from_checkpoint_state(state).to_dict()}
    settings = {k: v for k, v in saved.items() if k in known}
    if data_path is not None:
        settings["path"] = data_path
    datamodule = GenreDataModule(**settings).load()
    pre = Preprocessor.from_state_dict(state["preprocessor"])
    if pre.classes != datamodule.preprocessor.classes:
        raise GenreTorchError(f"the data at {settings.get('path') or 'the default location'} has other genres")
    predictor = Predictor(load_backbone(ckpt), pre, datamodule.spec)
    test = datamodule.frame.iloc[datamodule.splits["test"]]
    columns = list(dict.fromkeys([*pre.numeric, *pre.categorical, *pre.meta, *pre.text]))  # album_name: meta and text
    labels = pre.encode_labels(test[datamodule.spec.target]).numpy()
    scorer = _Scorer(predictor)
    result = permutation_importance(
        scorer, test[columns], labels, scoring=accuracy, n_repeats=repeats, random_state=seed
    )
    table = pd.DataFrame(
        {"column": columns, "importance_mean": result.importances_mean, "importance_std": result.importances_std}
    )
    table = table.sort_values("importance_mean", ascending=False, ignore_index=True)
    base = accuracy(scorer, test[columns], labels)
    if not (np.isfinite(table[["importance_mean", "importance_std"]].to_numpy()).all() and np.isfinite(base)):
        raise GenreTorchError("the importance scores are not finite (an empty test split?); nothing written")
    return table, state["dataset"], base


def main(argv: list[str]) -> None:
    """`genre-torch importance --ckpt_path CKPT [--data.path CSV] [--repeats 5]`."""
    args = parsers.importance().parse_args(argv)
    table, dataset, base = importance(args.ckpt_path, args.data_path, args.repeats, args.seed)
    runs, trained = Path(args.runs_dir) / dataset, resumed_version(str(args.ckpt_path))
    run = runs / f"version_{trained}"
    folder = run if trained is not None and run.is_dir() else runs / "importance"
    try:  # in the run of the checkpoint it explains (version_N/importance), else beside the runs
        version = (
            claim_evaluation(run, "importance") if folder == run else f"importance/version_{claim_version(folder)}"
        )
    except OSError as e:
        raise write_error(folder, e) from None
    logger = TensorBoardLogger(runs.parent, name=dataset, version=version, default_hp_metric=False)
    try:
        write(logger, table, f"{dataset}, accuracy {base:.4f}, {args.repeats} repeats", str(args.ckpt_path))
    except OSError as e:  # a file as --runs_dir, a read-only or full disk: no half-written version folder
        shutil.rmtree(logger.log_dir, ignore_errors=True)
        raise write_error(Path(logger.log_dir), e) from None
    print(f"test accuracy {base:.4f}; permutation importance ({args.repeats} repeats), written to {logger.log_dir}:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def write(logger: TensorBoardLogger, table: pd.DataFrame, title: str, ckpt_path: str) -> None:
    """importance.csv, importance.png and TensorBoard text and figure in the logger's version folder."""
    out = logger.log_dir
    logger.experiment.add_text(board_tag("importance/checkpoint"), ckpt_path)
    fig = figures.bars(
        table["column"],
        table["importance_mean"],
        table["importance_std"],
        f"permutation importance on the test split ({title})",
        "drop in test accuracy when the column is shuffled",
    )
    table.to_csv(f"{out}/importance.csv", index=False)
    fig.savefig(f"{out}/importance.png", dpi=100, bbox_inches="tight")
    logger.experiment.add_figure(board_tag("importance/permutation"), fig)  # no scalars: single dots before the curves
    logger.finalize("success")
