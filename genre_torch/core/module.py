"""GenreClassifier: a registry backbone trained with cross-entropy, with epoch-level metrics."""

from __future__ import annotations

import math
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.strategies import SingleDeviceStrategy
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from genre_torch.core import models
from genre_torch.core.errors import GenreTorchError

CHECKPOINT_KEY = "genre_torch"


class GenreClassifier(pl.LightningModule):
    """Classifies songs into genres; softmax is applied only when predicting."""

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        arch: str = "mlp",
        arch_args: dict[str, Any] | None = None,
        optimizer: Literal["adam", "adamw"] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "onecycle"] | None = None,
        label_smoothing: float = 0.0,
        warmup: float = 0.0,
        gradient_clip_val: float | None = None,
        compile: bool = False,
    ) -> None:
        """
        Args:
            num_features: Width of the encoded input (linked from the data module).
            num_classes: Number of genres (linked from the data module).
            arch: Registered architecture name (see genre_torch.core.models.names()).
            arch_args: Settings of that architecture, e.g. {hidden_dims: [128, 64, 32], activation: relu}.
            optimizer: adam or adamw.
            lr: Learning rate.
            weight_decay: Weight decay (L2 for adam, decoupled for adamw).
            scheduler: Optional per-step LR schedule over the whole run: cosine or onecycle.
            label_smoothing: Label smoothing of the cross-entropy loss.
            warmup: Share of all steps spent warming the LR up linearly (cosine; onecycle's pct_start, 0.3 if 0).
            gradient_clip_val: Clip the gradient norm of every step to this value (off if None).
            compile: Train a torch.compile'd backbone (in place: checkpoints keep the same keys); pays off
                on a GPU, where it fuses the small kernels of a tabular model; the first steps compile.
        """
        super().__init__()
        self.save_hyperparameters()
        # the optimiser is stepped here, not by Lightning: one training_step call may take a group of
        # batches (GenreDataModule.batches_per_step), which spreads Lightning's per-call cost over them
        self.automatic_optimization = False
        self.backbone = models.build(arch, num_features, num_classes, **(arch_args or {}))
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_f1 = MulticlassF1Score(num_classes, average="macro")
        # training metrics are summed on the device and read once per epoch: no host sync per step
        # plain tensors, not buffers: DDP overwrites buffers with rank 0's at every forward (broadcast_buffers)
        self._train_loss, self._train_correct, self._train_rows = torch.zeros(()), torch.zeros((), dtype=torch.long), 0
        self.preprocessor_state: dict[str, Any] | None = None
        self._direct_steps: Any = None
        self._cuda_rng_state: torch.Tensor | None = None
        self._ensemble, self._smoothing = hasattr(self.backbone, "forward_members"), label_smoothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an encoded feature batch."""
        return self.backbone(x)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One optimiser step per (x, y) batch: a single batch or a list of them (batches_per_step)."""
        steps = self._direct_steps  # Lightning's count of manual optimiser steps, when stepping directly
        opt, sched = self.optimizers(use_pl_optimizer=steps is None), self.lr_schedulers()
        trainer, rows, clip = self.trainer, 0, self.hparams.get("gradient_clip_val")
        # a group is a list of (x, y) pairs; a DataLoader's default collate gives one batch as [x, y]
        group = batch if isinstance(batch, list) and isinstance(batch[0], (tuple, list)) else [batch]
        for x, y in group:
            if 0 <= trainer.max_steps <= trainer.global_step:  # Lightning checks max_steps only between calls
                break
            loss, logits = self.training_loss(x, y)
            opt.zero_grad(set_to_none=True)
            if steps is None:
                self.manual_backward(loss)
            else:
                loss.backward()
            if clip:
                self.clip_gradients(opt, gradient_clip_val=clip, gradient_clip_algorithm="norm")
            opt.step()
            if steps is not None:  # what LightningOptimizer.step records: global_step counts these
                steps.increment_ready()
                steps.increment_completed()
            if sched is not None:
                sched.step()
            # in-place adds on detached values: nothing recorded for autograd, no host sync
            self._train_loss.add_(loss.detach(), alpha=len(y))
            # "true class has the top logit": on the CPU 4x cheaper than argmax over 114 classes
            self._train_correct.add_((logits.gather(1, y[:, None]) >= logits.amax(1, keepdim=True)).sum())
            rows += len(y)
        self._train_rows += rows

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of a batch and its (detached) logits; an ensemble backbone trains each member."""
        if not self._ensemble:
            logits = self.backbone(x)
            return F.cross_entropy(logits, y, label_smoothing=self._smoothing), logits.detach()
        out = self.backbone.forward_members(x)  # models/tabm.py: every member is trained with its own loss
        loss = F.cross_entropy(out.flatten(0, 1), y.repeat_interleave(out.shape[1]), label_smoothing=self._smoothing)
        return loss, out.detach().mean(1)

    def on_train_start(self) -> None:
        # On one device without loss scaling, Lightning's manual_backward and LightningOptimizer.step add
        # only hook dispatch (on_before/after_backward, on_before_optimizer_step), about as much CPU time
        # as the step of a small MLP. There the module calls backward and the torch optimiser itself and
        # advances Lightning's step count (global_step, max_steps); DDP and fp16 scaling go through Lightning.
        trainer = self.trainer
        direct = isinstance(trainer.strategy, SingleDeviceStrategy) and (
            getattr(trainer.precision_plugin, "scaler", None) is None
        )
        manual = getattr(trainer.fit_loop.epoch_loop, "manual_optimization", None)
        self._direct_steps = getattr(manual, "optim_step_progress", None) if direct else None
        if self._cuda_rng_state is not None and self.device.type == "cuda":  # a resumed run's dropout masks
            torch.cuda.set_rng_state(self._cuda_rng_state, self.device)
        self._cuda_rng_state = None

    def on_train_epoch_start(self) -> None:
        self._train_loss = torch.zeros((), device=self.device)
        self._train_correct = torch.zeros((), dtype=torch.long, device=self.device)
        self._train_rows = 0

    def on_train_epoch_end(self) -> None:
        rows = max(self._train_rows, 1)  # the same on every rank (TensorBatches), so the mean over ranks is exact
        self.log_dict({"train/loss": self._train_loss / rows, "train/acc": self._train_correct / rows}, sync_dist=True)

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], loss: MeanMetric, *metrics: Any) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss.update(F.cross_entropy(logits, y), weight=len(y))
        for metric in metrics:
            metric.update(logits, y)
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_loss, self.val_acc)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({"val/loss": self.val_loss, "val/acc": self.val_acc})

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Update the test metrics; the logits go to callbacks (genre_torch.tools.report.TestReport)."""
        return self._eval_step(batch, self.test_loss, self.test_acc, self.test_f1)

    def on_test_epoch_end(self) -> None:
        self.log_dict({"test/loss": self.test_loss, "test/acc": self.test_acc, "test/macro_f1": self.test_f1})

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=-1)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        if hp.optimizer not in ("adam", "adamw"):
            raise GenreTorchError(f"unknown optimizer {hp.optimizer!r}; known: adam, adamw")
        cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
        fused = all(p.device.type in ("cpu", "cuda") for p in self.parameters())  # one kernel, not a loop per tensor
        opt = cls(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, fused=fused)
        if hp.scheduler is None:
            return opt
        steps = self._total_steps()
        warm = int(hp.get("warmup", 0.0) * steps)
        if hp.scheduler == "cosine":
            cosine = lambda step: 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm))))  # noqa: E731
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: (step + 1) / warm if step < warm else cosine(step)
            )
        elif hp.scheduler == "onecycle":
            pct = hp.get("warmup", 0.0) or 0.3
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=steps, pct_start=pct)
        else:
            raise GenreTorchError(f"unknown scheduler {hp.scheduler!r}; known: cosine, onecycle (or null)")
        return {"optimizer": opt, "lr_scheduler": sched}  # stepped after every optimiser step (training_step)

    def _total_steps(self) -> int:
        """Optimiser steps of the whole run: a training_step call may take several batches (batches_per_step)."""
        trainer = self.trainer
        trainer.estimated_stepping_batches  # noqa: B018 (makes Lightning load the training data)
        per_epoch = getattr(trainer.train_dataloader, "optimizer_steps", trainer.num_training_batches)
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
        steps = min(epochs * per_epoch, trainer.max_steps if trainer.max_steps != -1 else math.inf)
        if math.isinf(steps):
            raise GenreTorchError("a learning-rate schedule needs a finite run: set --trainer.max_epochs or max_steps")
        return int(steps)

    def on_fit_start(self) -> None:
        self._remember_preprocessor()
        if self.hparams.get("compile"):
            self.backbone.compile()

    def on_test_start(self) -> None:
        self._remember_preprocessor()

    def _remember_preprocessor(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "preprocessor"):
            self.preprocessor_state = {
                "dataset": datamodule.spec.name,
                "preprocessor": datamodule.preprocessor.state_dict(),
            }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the checkpoint alone must be able to score raw rows: keep the fitted preprocessing and the
        # RNG state (dropout), so that a resumed run continues exactly like an uninterrupted one
        if self.preprocessor_state is not None:
            checkpoint[CHECKPOINT_KEY] = self.preprocessor_state
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if self.device.type == "cuda":
            checkpoint["cuda_rng_state"] = torch.cuda.get_rng_state(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.preprocessor_state = checkpoint.get(CHECKPOINT_KEY)
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        # restored before the model moves to its GPU: set in on_train_start
        self._cuda_rng_state = checkpoint.get("cuda_rng_state")
