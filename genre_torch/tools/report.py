"""TestReport: after every test run, write metrics, per-genre scores and the confusion matrix, and log them."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from matplotlib.figure import Figure
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from sklearn import metrics as skm

from genre_torch.core.training.board import board_tag
from genre_torch.tools import figures

TOP_K = (3, 5)


class TestReport(Callback):
    """Collects the test logits and writes metrics.json, per_genre.csv, confusion_matrix.csv/.png and embeddings.

    Files go into the run directory (trainer.log_dir); the figure, the top-k accuracies and the
    penultimate-layer embeddings of up to `max_embeddings` test songs (projector) go to TensorBoard.
    """

    def __init__(self, max_embeddings: int = 5000) -> None:
        self.max_embeddings = max_embeddings
        self._logits: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._logits, self._labels = [], []

    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, *_: Any
    ) -> None:
        if isinstance(outputs, torch.Tensor):  # GenreClassifier.test_step returns its logits
            self._logits.append(outputs.detach().float().cpu())
            self._labels.append(batch[1].detach().cpu())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._logits or trainer.sanity_checking:
            return
        logits, labels = torch.cat(self._logits), torch.cat(self._labels)
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            parts: list[Any] = [None] * trainer.world_size
            dist.all_gather_object(parts, (logits, labels))
            logits, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        topk = top_k_accuracies(logits.numpy(), labels.numpy())
        for k, value in topk.items():  # every rank logs the same gathered value
            pl_module.log(f"test/top{k}_acc", value)
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask, or rank 0 waits forever
        if not trainer.is_global_zero or trainer.fast_dev_run:
            return
        datamodule = getattr(trainer, "datamodule", None)
        pre = getattr(datamodule, "preprocessor", None)
        classes = list(pre.classes) if pre is not None and pre.fitted else [str(i) for i in range(logits.shape[1])]
        out_dir = Path(log_dir or trainer.default_root_dir)
        summary, figure = write_report(logits.numpy(), labels.numpy(), classes, out_dir)
        summary.update(dataset=getattr(getattr(datamodule, "spec", None), "name", None), checkpoint=trainer.ckpt_path)
        (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        writer = next((lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if writer is not None:
            step = trainer.global_step
            writer.add_figure(board_tag("test/confusion_matrix"), figure, step)
            writer.add_text(board_tag("test/metrics"), f"```\n{json.dumps(summary, indent=2)}\n```", step)
            confused = most_confused(logits.numpy(), labels.numpy(), classes)
            writer.add_text(board_tag("test/most_confused"), confused, step)
            self._log_embeddings(writer, trainer, pl_module, classes)

    def _log_embeddings(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, classes: list) -> None:
        """Penultimate-layer embeddings of (a fixed sample of) the test songs for TensorBoard's projector."""
        dm = trainer.datamodule
        backbone = getattr(pl_module, "backbone", None)
        if getattr(dm, "frame", None) is None or "test" not in dm.tensors:
            return
        if not hasattr(backbone, "embed"):
            warnings.warn(f"no projector embeddings: {type(backbone).__name__} has no embed() (docs/extending.md)")
            return
        x = dm.tensors["test"][0]
        idx = np.arange(len(x))
        if len(idx) > self.max_embeddings:
            idx = np.sort(np.random.default_rng(0).choice(idx, self.max_embeddings, replace=False))
        rows = dm.frame.iloc[dm.splits["test"][idx]]
        precision = trainer.precision_plugin  # the model may be float64 or bfloat16 (--trainer.precision *-true)
        with torch.no_grad(), precision.forward_context():
            batch = precision.convert_input(x[torch.from_numpy(idx).to(x.device)].to(pl_module.device))
            embedding = backbone.embed(batch).float().cpu()
            predicted = backbone(batch).argmax(1).cpu().numpy()
        meta_cols = [c for c in dm.spec.id_columns if c in rows and not c.endswith("_id")]
        header = ["genre", "predicted", *meta_cols]
        table = pd.DataFrame({"genre": rows[dm.spec.target].to_numpy(), "predicted": np.asarray(classes)[predicted]})
        for col in meta_cols:
            table[col] = rows[col].to_numpy()
        metadata = table.fillna("").astype(str).replace(r"[\t\n\r]", " ", regex=True).values.tolist()
        writer.add_embedding(
            embedding, metadata=metadata, metadata_header=header, tag="test_songs", global_step=trainer.global_step
        )


def top_k_accuracies(scores: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Top-k accuracy for each k in TOP_K that is smaller than the number of classes."""
    n = scores.shape[1]
    return {k: float(skm.top_k_accuracy_score(labels, scores, k=k, labels=np.arange(n))) for k in TOP_K if k < n}


def most_confused(logits: np.ndarray, labels: np.ndarray, classes: list[str], top: int = 15) -> str:
    """Markdown table of the largest off-diagonal shares of the confusion matrix (legible for 114 genres too)."""
    cm = skm.confusion_matrix(labels, logits.argmax(1), labels=np.arange(len(classes))).astype(float)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    np.fill_diagonal(rates, 0.0)
    flat = np.argsort(-rates, axis=None)[:top]
    rows = [
        f"| {classes[i]} | {classes[j]} | {100 * rates[i, j]:.1f} % |"
        for i, j in zip(*np.unravel_index(flat, rates.shape), strict=True)
        if rates[i, j] > 0
    ]
    return "\n".join(["| true genre | predicted as | share of the true genre |", "|---|---|---|", *rows])


def write_report(
    logits: np.ndarray, labels: np.ndarray, classes: list[str], out_dir: Path
) -> tuple[dict[str, Any], Figure]:
    """Write per_genre.csv, confusion_matrix.csv (counts) and confusion_matrix.png; return the metrics and figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = np.arange(len(classes))
    predicted = logits.argmax(1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(labels, predicted, labels=ids, zero_division=0)
    per_genre = pd.DataFrame({"genre": classes, "precision": precision, "recall": recall, "f1": f1, "support": support})
    per_genre.sort_values("f1", ascending=False).to_csv(out_dir / "per_genre.csv", index=False)
    cm = skm.confusion_matrix(labels, predicted, labels=ids)
    pd.DataFrame(cm, index=pd.Index(classes, name="true\\predicted"), columns=classes).to_csv(
        out_dir / "confusion_matrix.csv"
    )
    fig = figures.confusion(cm, classes)
    fig.savefig(out_dir / "confusion_matrix.png", dpi=100, bbox_inches="tight")
    summary = {
        "rows": int(len(labels)),
        "num_classes": len(classes),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "macro_f1": float(skm.f1_score(labels, predicted, labels=ids, average="macro", zero_division=0)),
        **{f"top{k}_accuracy": v for k, v in top_k_accuracies(logits, labels).items()},
        "files": ["per_genre.csv", "confusion_matrix.csv", "confusion_matrix.png"],
    }
    return summary, fig
