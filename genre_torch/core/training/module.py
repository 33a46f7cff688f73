"""GenreClassifier: a backbone, a criterion and an optional batch transform, trained by Lightning's own loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from genre_torch.core import models
from genre_torch.core.components import bound_arguments, to_config, to_factory
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.models import Backbone
from genre_torch.core.models.ensemble import build_backbone
from genre_torch.core.models.mlp import MLP
from genre_torch.core.training import schedules
from genre_torch.core.training.losses import Criterion, CrossEntropy
from genre_torch.core.training.safe_files import nonfinite_tensor
from genre_torch.core.training.transforms import BatchTransform

COMPONENTS = {"backbone": Backbone, "criterion": Criterion, "batch_transform": BatchTransform}
SCHEDULERS = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


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
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        metrics: dict[str, Callable[[int], Metric]] | None = None,
        compile: bool | Literal["default", "reduce-overhead", "max-autotune"] = False,
        ensemble_size: int = 1,
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
            optimizer: Any torch.optim optimiser or your own (`--optimizer SGD --optimizer.lr 0.1`; None: Adam),
                applied to the backbone's parameter groups (a group's lr_factor / wd_factor multiply lr / weight_decay).
                fused=True is passed where the class takes it and the config leaves it unset.
            lr_scheduler: Any torch LR scheduler (`--lr_scheduler StepLR --lr_scheduler.step_size 10`, stepped per
                epoch) or a per-step schedule over the whole run from genre_torch.core.training.schedules (OneCycle,
                WarmupCosine, CosLog4: any scheduler taking `total_steps` gets the run's optimiser steps and is
                stepped per optimiser step). None: a constant learning rate.
            metrics: Extra torchmetrics metrics by name, computed from the validation and test forward passes and
                logged as val/NAME and test/NAME (one value per genre as NAME/INDEX for per-class metrics), e.g.
                `top3_acc: {class_path: torchmetrics.classification.MulticlassAccuracy, init_args: {top_k: 3}}`;
                num_classes is passed as their first argument. Any of them can be --early_stopping.monitor.
            compile: torch.compile the backbone in place (checkpoints keep their keys): true, or a mode such as
                reduce-overhead (CUDA graphs on a GPU). The first steps compile.
            ensemble_size: K > 1 trains K independently initialised copies of the backbone as one packed ensemble
                (genre_torch.core.models.ensemble): stacked weights, one forward pass, one optimiser, one checkpoint;
                the training loss is the mean of the members' losses, predictions the mean of their probabilities.
                1: the backbone alone.
        """
        super().__init__()
        self.save_hyperparameters()
        self.hparams["optimizer"] = optimizer = optimizer or torch.optim.Adam  # the checkpoint names the default too
        for name in (*COMPONENTS, "optimizer", "lr_scheduler"):  # plain {class_path, init_args} in checkpoints
            self.hparams[name] = to_config(self.hparams[name])
        self.hparams["metrics"] = {k: to_config(v) for k, v in (metrics or {}).items()} or None
        _check_settings(num_features, num_classes)
        make = to_factory(backbone, Backbone)
        fill = "n_numeric" in _parameters(make) and bound_arguments(make).get("n_numeric") is None
        self.backbone = build_backbone(make, num_features, num_classes, num_numeric if fill else None, ensemble_size)
        self.criterion = to_factory(criterion, Criterion)(num_classes)
        self.batch_transform = to_factory(batch_transform, BatchTransform)(num_classes) if batch_transform else None
        self.make_optimizer = to_factory(optimizer, torch.optim.Optimizer)
        self.make_lr_scheduler = to_factory(lr_scheduler, SCHEDULERS) if lr_scheduler is not None else None
        _probe(self.make_optimizer, self.make_lr_scheduler)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_f1 = MulticlassF1Score(num_classes, average="macro")
        extra = {name: to_factory(m, Metric)(num_classes) for name, m in (metrics or {}).items()}
        self.val_metrics = MetricCollection(extra, prefix="val/") if extra else None
        self.test_metrics = self.val_metrics.clone(prefix="test/") if extra else None
        self._saved_schedules: list[dict[str, Any]] = []  # a resumed run's scheduler states (their lengths)
        self._configured = False  # configure_optimizers ran in this run
        self._sums: tuple[torch.Tensor, torch.Tensor] | None = None  # training loss and hits of the epoch
        self._rows = 0
        self._cuda_rng_state: torch.Tensor | None = None
        self._ensemble = hasattr(self.backbone, "forward_members")

    @property
    def lr(self) -> float:
        """The optimiser's base learning rate (LearningRateFinder reads and sets it)."""
        return float(_signature_defaults(self.make_optimizer).get("lr", 1e-3))

    @lr.setter
    def lr(self, value: float) -> None:
        config = dict(self.hparams.optimizer)
        self.hparams.optimizer = {**config, "init_args": {**(config.get("init_args") or {}), "lr": value}}
        self.make_optimizer = to_factory(self.hparams.optimizer, torch.optim.Optimizer)

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
        """A new run: its optimiser is not configured yet."""
        self._configured = False

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        """Loss of an (x, y) batch."""
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
                "for it: lower --optimizer.lr, or add --trainer.gradient_clip_val"
            )

    def on_train_epoch_end(self) -> None:
        rows = max(self._rows, 1)  # the same on every rank (TensorBatches), so the mean over ranks is exact
        loss_sum, hits = self._sums
        self.log_dict({"train/loss": loss_sum / rows, "train/acc": hits / rows, **self._x_axis()}, sync_dist=True)

    def _x_axis(self) -> dict[str, float]:
        """Epoch metrics plotted at the epoch's last optimiser step, as Lightning plots them, also where a
        training_step call takes several optimiser steps. Logging the step keeps Lightning from adding an `epoch`
        scalar, which TensorBoard showed first, as a chart group of its own, above the curves."""
        return {"step": float(max(self.trainer.global_step - 1, 0))}

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], loss: MeanMetric, *metrics: Any) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss.update(self.criterion(logits, y), weight=len(y))
        for metric in metrics:
            metric.update(logits, y)
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_loss, self.val_acc, *filter(None, [self.val_metrics]))

    def on_validation_epoch_end(self) -> None:
        self.log_dict({"val/loss": self.val_loss, "val/acc": self.val_acc, **_values(self.val_metrics)})
        if not self.trainer.sanity_checking:
            self.log_dict(self._x_axis())

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Update the test metrics; the logits go to callbacks (the test report)."""
        return self._eval_step(batch, self.test_loss, self.test_acc, self.test_f1, *filter(None, [self.test_metrics]))

    def on_test_epoch_end(self) -> None:
        metrics = {"test/loss": self.test_loss, "test/acc": self.test_acc, "test/macro_f1": self.test_f1}
        self.log_dict({**metrics, **_values(self.test_metrics), **self._x_axis()})

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=-1)

    def configure_optimizers(self) -> Any:
        """The injected optimiser over the backbone's parameter groups, and the injected LR scheduler."""
        make = self.make_optimizer
        defaults = _signature_defaults(make)
        kwargs = {}
        if "fused" in defaults and defaults["fused"] is None:  # one kernel, not a loop per tensor
            kwargs["fused"] = all(p.device.type in ("cpu", "cuda") for p in self.parameters()) or None
        lr, weight_decay = float(defaults.get("lr", 1e-3)), float(defaults.get("weight_decay", 0.0) or 0.0)
        groups = models.optimizer_groups(self.backbone, lr, weight_decay)  # a backbone may declare LR factors
        own = {id(p) for p in self.backbone.parameters()}
        rest = [p for p in self.parameters() if id(p) not in own]  # a criterion's or transform's parameters
        groups += [{"params": rest}] if rest else []
        opt = make(groups, **kwargs)
        self._configured = True
        self._built_for = self._tunable_settings()
        if self.make_lr_scheduler is None:
            return opt
        make = self.make_lr_scheduler
        per_step = "total_steps" in _parameters(make)
        if per_step and bound_arguments(make).get("total_steps") is None:
            make = functools.partial(make, total_steps=schedules.total_steps(self.trainer))
        sched = make(opt)
        self._check_resumed_length(sched)
        config = {"scheduler": sched, "interval": "step" if per_step else "epoch"}
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            ckpt = getattr(self.trainer, "checkpoint_callback", None)
            config["monitor"] = getattr(ckpt, "monitor", None) or "val/loss"
        return {"optimizer": opt, "lr_scheduler": config}

    def _check_resumed_length(self, sched: Any) -> None:
        """A schedule over the whole run cannot continue into a run of another length: refuse in one line."""
        saved = next(iter(self._saved_schedules), {})
        self._saved_schedules = []  # checked once, for the checkpoint the run resumes from
        before, now = saved.get("total_steps"), getattr(sched, "total_steps", None)
        if before is not None and now is not None and before != now:
            raise GenreTorchError(
                f"the checkpoint's learning-rate schedule spans {before} optimiser steps, this run would take {now} "
                "(--trainer.max_epochs, max_steps or the batch size changed): resume with the run's own settings, "
                "or start a new run from its weights"
            )

    def _tunable_settings(self) -> tuple[float, int | None]:
        """The settings the optimiser and its schedule are built from that a tuner callback may change: lr, batch."""
        try:
            datamodule = getattr(self.trainer, "datamodule", None)
        except RuntimeError:  # not attached to a Trainer (a plain loop calling configure_optimizers)
            datamodule = None
        return self.lr, getattr(datamodule, "hparams", {}).get("batch_size")

    def on_fit_start(self) -> None:
        # LearningRateFinder and BatchSizeFinder run in the callbacks' on_fit_start, after Lightning built the
        # optimiser: a schedule would keep the old peak LR and the old number of steps. Rebuild from what they set
        # (before a resumed run's optimiser state is restored, which Lightning does after this hook).
        if getattr(self, "_built_for", None) not in (None, self._tunable_settings()):
            self.trainer.strategy.setup_optimizers(self.trainer)
        if self.hparams.compile:
            mode = None if self.hparams.compile is True else self.hparams.compile
            self.backbone.compile(mode=mode)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the RNG state (dropout, batch transforms), so that a resumed run continues exactly like an uninterrupted
        # one; the fitted preprocessing is the datamodule's state_dict, which Lightning saves beside
        bad = nonfinite_tensor(checkpoint["state_dict"])
        if bad is not None:
            raise GenreTorchError(f"refusing to save a checkpoint with non-finite weights ({bad}): training diverged")
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if self.device.type == "cuda":
            checkpoint["cuda_rng_state"] = torch.cuda.get_rng_state(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not self._configured:  # the checkpoint a run resumes from, not one a tuner restores after configuring
            self._saved_schedules = [dict(state) for state in checkpoint.get("lr_schedulers") or []]
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        self._cuda_rng_state = checkpoint.get("cuda_rng_state")  # set in on_train_start, once the model is on its GPU


def _parameters(factory: Callable[..., Any]) -> set[str]:
    """Names of the parameters a factory (class or partial) accepts."""
    import inspect

    target = getattr(factory, "func", factory)
    target = next((a for a in getattr(factory, "args", ()) if isinstance(a, type)), target)
    return set(inspect.signature(target).parameters)


def _signature_defaults(factory: Callable[..., Any]) -> dict[str, Any]:
    """The keyword arguments a factory calls with: its class's defaults, then what the factory binds."""
    import inspect

    target = getattr(factory, "func", factory)
    target = next((a for a in getattr(factory, "args", ()) if isinstance(a, type)), target)
    params = inspect.signature(target).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return {**defaults, **bound_arguments(factory)}


def _probe(make_optimizer: Callable[..., Any], make_lr_scheduler: Callable[..., Any] | None) -> None:
    """Build the optimiser and scheduler once on a dummy parameter: their own checks of their settings, one line."""
    names = [getattr(make_optimizer, "func", make_optimizer), getattr(make_lr_scheduler, "func", make_lr_scheduler)]
    try:
        opt = make_optimizer([torch.nn.Parameter(torch.zeros(1))])
        if make_lr_scheduler is not None:
            fill = "total_steps" in _parameters(make_lr_scheduler)
            sched = make_lr_scheduler(opt, **({"total_steps": 2} if fill else {}))
            opt.step()
            sched.step(*([0.0] if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) else []))
    except (ValueError, TypeError, ZeroDivisionError) as e:
        name = next((getattr(n, "__name__", str(n)) for n in names if n is not None), "optimizer")
        raise GenreTorchError(f"--optimizer / --lr_scheduler ({name}, ...): {' '.join(str(e).split())}") from None


def _values(metrics: MetricCollection | None) -> dict[str, torch.Tensor]:
    """Computed metrics by name, a per-class metric as one value per class (NAME/INDEX); the metrics are reset."""
    if metrics is None:
        return {}
    out = {}
    for name, value in metrics.compute().items():
        if value.numel() == 1:
            out[name] = value.reshape(())
        else:
            out.update({f"{name}/{i}": v for i, v in enumerate(value.flatten())})
    metrics.reset()
    return out


def _check_settings(num_features: int, num_classes: int) -> None:
    """One-line errors for settings outside their range, before anything is built."""
    checks = [
        (num_features >= 1, f"num_features must be at least 1, got {num_features}"),
        (num_classes >= 2, f"num_classes must be at least 2, got {num_classes}"),
    ]
    for ok, message in checks:
        if not ok:
            raise GenreTorchError(message)
