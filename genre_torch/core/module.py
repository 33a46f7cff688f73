"""GenreClassifier: a backbone, a criterion and an optional batch transform, trained by Lightning's own loop."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from genre_torch.core import fast, models
from genre_torch.core.checkpoint_io import nonfinite_tensor
from genre_torch.core.checkpoints import CHECKPOINT_KEY
from genre_torch.core.components import bound_arguments, to_config, to_factory
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.losses import Criterion, CrossEntropy
from genre_torch.core.models import Backbone
from genre_torch.core.models.mlp import MLP
from genre_torch.core.transforms import BatchTransform

COMPONENTS = {"backbone": Backbone, "criterion": Criterion, "batch_transform": BatchTransform}


class GenreClassifier(pl.LightningModule):
    """Classifies songs into genres; softmax is applied only when predicting."""

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        num_numeric: int | None = None,
        backbone: Callable[[int, int], Backbone] = MLP,
        criterion: Callable[[int], Criterion] = CrossEntropy,
        batch_transform: Callable[[int], BatchTransform] | None = None,
        optimizer: Literal["adam", "adamw"] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "onecycle", "coslog4"] | None = None,
        warmup: float = 0.0,
        compile: bool | Literal["default", "reduce-overhead", "max-autotune"] = False,
    ) -> None:
        """
        Args:
            num_features: Width of the encoded input (linked from the data module).
            num_classes: Number of genres (linked from the data module).
            num_numeric: Leading standardised numeric columns of the input (linked from the data module); fills a
                backbone's `n_numeric` setting when that is left at None.
            backbone: Architecture: class_path + init_args of a genre_torch.core.models.Backbone subclass
                (MLP, PLRMLP, ResMLP, TabM, FTTransformer; `--model.backbone.help NAME` lists its settings).
            criterion: Loss for training, val/loss and test/loss: CrossEntropy (label_smoothing) or FocalLoss.
            batch_transform: Training-batch augmentation, e.g. Mixup (None: off).
            optimizer: adam or adamw.
            lr: Learning rate.
            weight_decay: Weight decay (L2 for adam, decoupled for adamw).
            scheduler: Per-step learning-rate schedule over the whole run: cosine, onecycle or coslog4 (RealMLP's
                4 cosine cycles on a log time scale) (None: constant).
            warmup: Share of all steps spent warming the learning rate up linearly (cosine, coslog4; onecycle's
                pct_start, 0.3 if 0).
            compile: torch.compile the backbone in place (checkpoints keep their keys): true, or a mode such as
                reduce-overhead (CUDA graphs on a GPU). The first steps compile.
        """
        super().__init__()
        self.save_hyperparameters()
        for name in COMPONENTS:  # plain {class_path, init_args} in hparams and checkpoints
            self.hparams[name] = to_config(self.hparams[name])
        _check_settings(num_features, num_classes, lr, weight_decay, warmup)
        make = to_factory(backbone, Backbone)
        fill = "n_numeric" in _parameters(make) and bound_arguments(make).get("n_numeric") is None
        self.backbone = make(num_features, num_classes, **({"n_numeric": num_numeric} if fill else {}))
        self.criterion = to_factory(criterion, Criterion)(num_classes)
        self.batch_transform = to_factory(batch_transform, BatchTransform)(num_classes) if batch_transform else None
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_f1 = MulticlassF1Score(num_classes, average="macro")
        self.preprocessor_state: dict[str, Any] | None = None
        self._sums: tuple[torch.Tensor, torch.Tensor] | None = None  # training loss and hits of the epoch
        self._rows = 0
        self._cuda_rng_state: torch.Tensor | None = None
        self._ensemble = hasattr(self.backbone, "forward_members")

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets plain attributes (the name of the running hook) several times per step; nn.Module's
        # __setattr__ checks parameters, buffers and submodules first, about 3 us each time on this CPU.
        # A plain value replacing a plain value takes the short way; everything else nn.Module's.
        if name in self.__dict__ and not isinstance(value, (torch.Tensor, torch.nn.Module)):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an encoded feature batch."""
        return self.backbone(x)

    def setup(self, stage: str) -> None:
        """The grouped fast path (--data.batches_per_step > 1) trains with manual optimisation."""
        self.automatic_optimization = not fast.enabled(self.trainer)
        if stage == "fit":
            fast.check(self.trainer, self)  # also when trained without GenreCLI

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        """Loss of an (x, y) batch; on the fast path, a group of batches with one optimiser step each."""
        if not self.automatic_optimization:
            return fast.training_step(self, batch)
        x, y = batch
        loss, logits = self.training_loss(x, y)
        self.count(loss, logits, y)
        return loss

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Criterion of a (transformed) batch and its detached logits; an ensemble backbone trains each member."""
        target = y
        if self.batch_transform is not None:
            x, target = self.batch_transform(x, y)
        if not self._ensemble:
            logits = self.backbone(x)
            return self.criterion(logits, target), logits.detach()
        out = self.backbone.forward_members(x)  # every member is trained with its own loss
        return self.criterion(out.flatten(0, 1), target.repeat_interleave(out.shape[1], 0)), out.detach().mean(1)

    def count(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch to the epoch's training loss and accuracy, on the device (no host sync per step)."""
        loss_sum, hits = self._sums
        loss_sum.add_(loss.detach(), alpha=len(y))
        # "true class has the top logit": on the CPU 4x cheaper than argmax over 114 classes
        hits.add_((logits.gather(1, y[:, None]) >= logits.amax(1, keepdim=True)).sum())
        self._rows += len(y)

    def on_train_start(self) -> None:
        if self._cuda_rng_state is not None and self.device.type == "cuda":  # a resumed run's dropout masks
            torch.cuda.set_rng_state(self._cuda_rng_state, self.device)
        self._cuda_rng_state = None

    def on_train_epoch_start(self) -> None:
        self._sums = torch.zeros((), device=self.device), torch.zeros((), dtype=torch.long, device=self.device)
        self._rows = 0

    def on_validation_epoch_start(self) -> None:
        if self.trainer.sanity_checking or self.trainer.state.fn != "fit" or self._sums is None:
            return
        # once per epoch, before ModelCheckpoint can save: a diverged model is never written
        finite = torch.isfinite(self._sums[0]) & torch.stack([p.isfinite().all() for p in self.parameters()]).all()
        if not bool(finite):
            raise GenreTorchError(
                f"training diverged in epoch {self.current_epoch} (non-finite loss or weights); nothing was saved "
                "for it: lower --model.lr, or add --trainer.gradient_clip_val"
            )

    def on_train_epoch_end(self) -> None:
        fast.step_epoch_schedulers(self)
        rows = max(self._rows, 1)  # the same on every rank (TensorBatches), so the mean over ranks is exact
        loss_sum, hits = self._sums
        self.log_dict({"train/loss": loss_sum / rows, "train/acc": hits / rows, **fast.x_axis(self)}, sync_dist=True)

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], loss: MeanMetric, *metrics: Any) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss.update(self.criterion(logits, y), weight=len(y))
        for metric in metrics:
            metric.update(logits, y)
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_loss, self.val_acc)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({"val/loss": self.val_loss, "val/acc": self.val_acc})
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.log_dict(fast.x_axis(self))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Update the test metrics; the logits go to callbacks (the test report)."""
        return self._eval_step(batch, self.test_loss, self.test_acc, self.test_f1)

    def on_test_epoch_end(self) -> None:
        self.log_dict({"test/loss": self.test_loss, "test/acc": self.test_acc, "test/macro_f1": self.test_f1})

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=-1)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
        fused = all(p.device.type in ("cpu", "cuda") for p in self.parameters())  # one kernel, not a loop per tensor
        groups = models.optimizer_groups(self.backbone, hp.lr, hp.weight_decay)  # a backbone may declare LR factors
        own = {id(p) for p in self.backbone.parameters()}
        rest = [p for p in self.parameters() if id(p) not in own]  # a criterion's or transform's parameters
        groups += [{"params": rest}] if rest else []
        opt = cls(groups, lr=hp.lr, weight_decay=hp.weight_decay, fused=fused)
        self._built_for = self._tunable_settings()
        if hp.scheduler is None:
            return opt
        steps = fast.total_steps(self.trainer)
        warm = int(hp.warmup * steps)
        if hp.scheduler in ("cosine", "coslog4"):
            shape = {  # multiplier of the learning rate over the run's progress t in [0, 1] after warm-up
                "cosine": lambda t: 0.5 * (1 + math.cos(math.pi * t)),
                # RealMLP's: 4 cosine cycles, each twice as long as the previous one
                "coslog4": lambda t: 0.5 * (1 - math.cos(2 * math.pi * math.log2(1 + 15 * t))),
            }[hp.scheduler]
            progress = lambda step: min(1.0, (step - warm) / max(1, steps - warm))  # noqa: E731
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: (step + 1) / warm if step < warm else shape(progress(step))
            )
        else:
            pct = hp.warmup or 0.3
            max_lr = [group["lr"] for group in opt.param_groups]
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps, pct_start=pct)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _tunable_settings(self) -> tuple[float, int | None]:
        """The settings the optimiser and its schedule are built from that a tuner callback may change: lr, batch."""
        try:
            datamodule = getattr(self.trainer, "datamodule", None)
        except RuntimeError:  # not attached to a Trainer (a plain loop calling configure_optimizers)
            datamodule = None
        return self.hparams.lr, getattr(datamodule, "hparams", {}).get("batch_size")

    def on_fit_start(self) -> None:
        # LearningRateFinder and BatchSizeFinder run in the callbacks' on_fit_start, after Lightning built the
        # optimiser: a schedule would keep the old peak LR and the old number of steps. Rebuild from what they set
        # (before a resumed run's optimiser state is restored, which Lightning does after this hook).
        if getattr(self, "_built_for", None) not in (None, self._tunable_settings()):
            self.trainer.strategy.setup_optimizers(self.trainer)
        self._remember_preprocessor()
        if self.hparams.compile:
            mode = None if self.hparams.compile is True else self.hparams.compile
            self.backbone.compile(mode=mode)

    def on_test_start(self) -> None:
        self._remember_preprocessor()

    def _remember_preprocessor(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "preprocessor"):
            self.preprocessor_state = {
                "dataset": datamodule.spec.name,
                "spec": datamodule.spec.to_dict(),  # numeric: auto is resolved by now (setup read the data)
                "preprocessor": datamodule.preprocessor.state_dict(),
            }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the checkpoint alone must be able to score raw rows: keep the fitted preprocessing and the
        # RNG state (dropout, batch transforms), so that a resumed run continues exactly like an uninterrupted one
        bad = nonfinite_tensor(checkpoint["state_dict"])
        if bad is not None:
            raise GenreTorchError(f"refusing to save a checkpoint with non-finite weights ({bad}): training diverged")
        if self.preprocessor_state is not None:
            checkpoint[CHECKPOINT_KEY] = self.preprocessor_state
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if self.device.type == "cuda":
            checkpoint["cuda_rng_state"] = torch.cuda.get_rng_state(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.preprocessor_state = checkpoint.get(CHECKPOINT_KEY)
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        self._cuda_rng_state = checkpoint.get("cuda_rng_state")  # set in on_train_start, once the model is on its GPU


def _parameters(factory: Callable[..., Any]) -> set[str]:
    """Names of the parameters a factory (class or partial) accepts."""
    import inspect

    target = getattr(factory, "func", factory)
    target = next((a for a in getattr(factory, "args", ()) if isinstance(a, type)), target)
    return set(inspect.signature(target).parameters)


def _check_settings(num_features: int, num_classes: int, lr: float, weight_decay: float, warmup: float) -> None:
    """One-line errors for settings outside their range, before anything is built."""
    checks = [
        (num_features >= 1, f"num_features must be at least 1, got {num_features}"),
        (num_classes >= 2, f"num_classes must be at least 2, got {num_classes}"),
        (lr >= 0 and math.isfinite(lr), f"--model.lr must be a finite number >= 0, got {lr}"),
        (weight_decay >= 0, f"--model.weight_decay must be >= 0, got {weight_decay}"),
        (0 <= warmup < 1, f"--model.warmup must be in [0, 1), got {warmup}"),
    ]
    for ok, message in checks:
        if not ok:
            raise GenreTorchError(message)
