"""GenreCLI: LightningCLI with the data sizes linked into the model, early stopping, checkpoints, TensorBoard."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import TensorBoardLogger

from genre_torch.core.errors import GenreTorchError


class GenreCLI(LightningCLI):
    """LightningCLI with data sizes linked into the model and always-on early stopping, checkpoints, TensorBoard."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_features", "model.num_features", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults(
            {"early_stopping.monitor": "val/loss", "early_stopping.mode": "min", "early_stopping.patience": 10}
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # the best checkpoint is chosen by the early-stopping metric: --early_stopping.monitor val/acc
        # --early_stopping.mode max switches both
        parser.link_arguments("early_stopping.monitor", "checkpoint.monitor")
        parser.link_arguments("early_stopping.mode", "checkpoint.mode")
        parser.set_defaults(
            {
                # last.ckpt links to the newest checkpoint written, so a checkpoint is written only when
                # validation improves; a resumed run replays the epochs since then exactly
                "checkpoint.save_last": "link",
                "checkpoint.filename": "best-epoch{epoch:03d}-val_acc{val/acc:.4f}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        # metrics are logged per epoch; a training_step call takes batches_per_step batches, so an epoch
        # may have fewer calls than Lightning's default interval of 50 (which would only warn)
        parser.set_defaults({"trainer.log_every_n_steps": 1})
        parser.add_argument("--runs_dir", type=str, default="runs", help="Folder of TensorBoard runs.")
        parser.add_argument("--checkpoints_dir", type=str, default="checkpoints", help="Folder of checkpoints.")
        parser.add_argument(
            "--num_threads", type=int | None, default=None, help="torch intra-op CPU threads (default: torch's)."
        )

    def before_instantiate_classes(self) -> None:
        """Apply --num_threads before anything runs (tiny models train fastest on 1 thread per process)."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("num_threads"):
            torch.set_num_threads(config["num_threads"])
        trainer = config.get("trainer") or {}
        if trainer.get("gradient_clip_val"):  # GenreClassifier steps its optimiser itself (batches_per_step)
            raise GenreTorchError("use --model.gradient_clip_val instead of --trainer.gradient_clip_val")
        if (trainer.get("accumulate_grad_batches") or 1) != 1:
            raise GenreTorchError(
                "--trainer.accumulate_grad_batches is not supported; raise --data.batch_size for larger steps"
            )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Default to a TensorBoardLogger under runs/<dataset>/ and checkpoints in checkpoints/<dataset>/<version>/."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        dataset = self.datamodule.spec.name
        if kwargs.get("logger") in (None, True) and config["trainer"].get("logger") in (None, True):
            kwargs["logger"] = TensorBoardLogger(
                config["runs_dir"],
                name=dataset,
                version=_resumed_version(config.get("ckpt_path")) if self.subcommand == "fit" else None,
                default_hp_metric=False,
            )
        if config["trainer"].get("enable_progress_bar") is None and not sys.stdout.isatty():
            kwargs["enable_progress_bar"] = False  # a redrawn bar floods logs and CI output
        trainer = super().instantiate_trainer(**kwargs)
        ckpt = trainer.checkpoint_callback
        if isinstance(ckpt, ModelCheckpoint) and ckpt.dirpath is None and trainer.logger is not None:
            ckpt.dirpath = str(Path(config["checkpoints_dir"]) / dataset / f"version_{trainer.logger.version}")
        return trainer

    def after_fit(self) -> None:
        """Report the best checkpoint and its validation accuracy, test it once, say how to open the curves."""
        if self.trainer.fast_dev_run:
            return
        best = getattr(self.trainer.checkpoint_callback, "best_model_path", "") or None
        val = self.trainer.validate(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)
        test = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)
        self.final_metrics = {**val[0], **test[0]}  # the best checkpoint's, for scripts driving the CLI
        if self.trainer.logger is not None:  # final numbers beside the hyperparameters in TensorBoard's HParams tab
            metrics = {"hp/val_acc": val[0]["val/acc"], "hp/test_acc": test[0]["test/acc"]}
            self.trainer.logger.log_hyperparams(self.model.hparams, metrics)
            self.trainer.logger.finalize("success")  # flush and close the event writer
        if self.trainer.is_global_zero:
            print(f"best checkpoint: {best or '(none saved; last weights)'}  val accuracy: {val[0]['val/acc']:.4f}")
            print(f"test accuracy: {test[0]['test/acc']:.4f}  macro-F1: {test[0]['test/macro_f1']:.4f}")
            if self.trainer.logger is not None and self.trainer.logger.log_dir:
                print(f"curves: tensorboard --logdir {Path(self.trainer.logger.log_dir).parent}")


def _resumed_version(ckpt_path: str | None) -> int | None:
    """The run version that `fit --ckpt_path .../version_N/last.ckpt` continues, so it keeps its folders."""
    match = re.fullmatch(r"version_(\d+)", Path(ckpt_path).parent.name) if ckpt_path else None
    return int(match.group(1)) if match else None
