"""GenreCLI: LightningCLI with the data sizes linked into the model, early stopping, checkpoints, TensorBoard."""

from __future__ import annotations

import enum
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import (
    BackboneFinetuning,
    BatchSizeFinder,
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ModelPruning,
    OnExceptionCheckpoint,
    ProgressBar,
    SpikeDetection,
    StochasticWeightAveraging,
    WeightAveraging,
)
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, LRSchedulerTypeTuple
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins.io import CheckpointIO
from pytorch_lightning.utilities import rank_zero_only

from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training import compile_cache, fast, signals
from genre_torch.core.training.atomic_io import AtomicCheckpointIO
from genre_torch.core.training.board import RunLogger, board_tag
from genre_torch.core.training.checkpoints import check_checkpoint, checkpoint_data
from genre_torch.core.training.console import EpochLine
from genre_torch.core.training.latest import LatestCheckpoint
from genre_torch.core.training.provenance import check_against, data_file
from genre_torch.core.training.provenance_callback import Provenance
from genre_torch.core.training.runs import claim_evaluation, claim_version, discard, resumed_version
from genre_torch.core.training.stop import StopOnSignal
from genre_torch.core.training.switching import inherited_settings

# jsonargparse checks a callback's arguments by dumping them with yaml.safe_dump, which cannot represent an enum:
# `--trainer.callbacks+=Timer` died on its default interval=Interval.step. Enums are dumped as their value.
yaml.SafeDumper.add_multi_representer(enum.Enum, lambda dumper, member: dumper.represent_data(member.value))

HPARAM_DATA_KEYS = ("dataset", "features", "split", "batch_size", "missing_indicators", "scaling", "batches_per_step")
DEFAULT_FILENAME = "best-epoch{epoch:03d}-val_acc{val/acc:.4f}"
SHOWN_METRICS = ("val/loss", "val/acc")  # in the default checkpoint name and every console line
HPARAM_SETTINGS = {
    "optimizer": ("lr", "weight_decay", "momentum"),
    "lr_scheduler": ("warmup", "pct_start", "step_size"),
}
# What usually tells runs apart, marked `differs` so that TensorBoard's HParams table shows it (the first 5 of the
# marked settings, then the others, by name): TensorBoard reads one run's list, so it cannot tell by itself.
HPARAM_SHOWN = (
    "backbone",
    "backbone/hidden_dims",  # a backbone's width: one of these three
    "backbone/width",
    "backbone/d_token",
    "criterion",
    "optimizer/lr",
    "seed",
)
FIRST_METRICS = ("val/acc", "test/acc", "test/macro_f1")  # the HParams table's first metric columns


class CLIError(GenreTorchError):
    """A configuration error, reported as one line."""


class OneLineParser(LightningArgumentParser):
    """LightningArgumentParser whose errors are one line plus a pointer to --help, instead of the whole usage."""

    def error(self, message: str, ex: Exception | None = None) -> Any:
        text = " ".join(str(message).split())
        unknown = re.search(r"^Parser key \"(\w+)\": Does not validate .* Given value: NestedArg\(key='([^']+)'", text)
        typed = re.search(r"Errors: - Parser key \"([\w.]+)\": (Expected a .*?\. Got value: \S+)", text)
        if unknown and typed:  # a known option of a subclass-typed group (--model) with a value of the wrong type
            text = f'Parser key "{unknown[1]}.{typed[1]}": {typed[2]}'
        elif unknown:  # a subclass-typed group (--model): jsonargparse lists every subtype it tried
            text = f"unknown option --{unknown[1]}.{unknown[2]}"
        prog = self.prog.replace(" [options]", "")
        raise CLIError(f"{text} (see `{prog} --help`)") from None


class GenreCLI(LightningCLI):
    """LightningCLI with data sizes linked into the model and always-on early stopping, checkpoints, TensorBoard.

    LightningCLI's --optimizer/--lr_scheduler (any torch optimiser or scheduler, or your own) are handed to the model
    as callables (model.optimizer / model.lr_scheduler), so that it applies them to the backbone's parameter groups.
    """

    def __init__(self, *args: Any, test_callbacks: list[Callback] | None = None, **kwargs: Any) -> None:
        """test_callbacks join the trainer for its test runs only (fit's steps do not dispatch to them)."""
        kwargs.setdefault("auto_configure_optimizers", False)  # the model builds them: see add_arguments_to_parser
        self.test_callbacks = list(test_callbacks or [])
        kwargs.setdefault("parser_class", OneLineParser)
        self.claimed: list[Path] = []
        self.compiling = False  # --model.compile: a compile that fails on the filesystem is one line
        try:
            super().__init__(*args, **kwargs)
        except BaseException as e:
            self.discard_unfinished()
            failed = compile_cache.compile_error(e) if self.compiling else None
            if failed is not None:
                raise failed from None
            if signals.received() is not None:  # Lightning ends a SIGTERM with SIGTERMException: say it here
                raise signals.Interrupted(signals.received(), self.resume_hint()) from None
            raise

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for size in ("num_features", "num_classes", "num_numeric"):
            parser.link_arguments(f"data.{size}", f"model.init_args.{size}", apply_on="instantiate")
        # LightningCLI's --optimizer / --lr_scheduler: handed to the model (before_instantiate_classes), which applies
        # the backbone's parameter groups, rather than patched over its configure_optimizers
        parser.add_optimizer_args((torch.optim.Optimizer,))
        parser.add_lr_scheduler_args(LRSchedulerTypeTuple)
        parser.set_defaults({"optimizer": {"class_path": "torch.optim.Adam"}})
        # --model takes a subclass (subclass_mode_model); without one, the model class given to the CLI
        parser.set_defaults({"model": {"class_path": f"{self.model_class.__module__}.{self.model_class.__qualname__}"}})
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults(
            {
                "early_stopping.monitor": "val/loss",
                "early_stopping.mode": "min",
                "early_stopping.patience": 10,
                # checked after validation, where val/* is logged (a max_steps stop mid-epoch has none)
                "early_stopping.check_on_train_epoch_end": False,
            }
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # the best checkpoint is chosen by the early-stopping metric: --early_stopping.monitor val/acc
        # --early_stopping.mode max switches both
        parser.link_arguments("early_stopping.monitor", "checkpoint.monitor")
        parser.link_arguments("early_stopping.mode", "checkpoint.mode")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,  # last.ckpt after every epoch (LatestCheckpoint), to resume from
                "checkpoint.filename": DEFAULT_FILENAME,  # another monitor than val/loss, val/acc: named instead
                "checkpoint.auto_insert_metric_name": False,
                # epoch-level metrics; a module's self.log(on_step=True) gets one point per optimiser step
                "trainer.log_every_n_steps": 1,
                # GenreCLI logs the hyperparameters of model and data once, with the final metrics (after_fit)
                "trainer.enable_autolog_hparams": False,
            }
        )
        parser.add_argument("--runs_dir", type=str, default="runs", help="Folder of TensorBoard runs.")
        parser.add_argument("--checkpoints_dir", type=str, default="checkpoints", help="Folder of checkpoints.")
        parser.add_argument(
            "--num_threads", type=int | None, default=None, help="torch intra-op CPU threads (default: torch's)."
        )
        parser.add_argument(
            "--float32_matmul_precision",
            type=str | None,
            default=None,
            help="torch.set_float32_matmul_precision: highest (default), high or medium (TF32 matmuls on a GPU).",
        )
        parser.add_argument("--test_after_fit", type=bool, default=True, help="Test the final model once after fit.")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then check --ckpt_path before LightningCLI reads hyperparameters from it. test and validate take
        the data settings from the checkpoint (its dataset spec included); --config and --data.* given override them."""
        super().parse_arguments(parser, args)
        argv = sys.argv[1:] if args is None else args
        self.argv = [str(a) for a in argv] if isinstance(argv, list) else []
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else None
        if not ckpt:
            return
        check_checkpoint(ckpt)
        if sub in ("test", "validate") and isinstance(argv, list) and sub in argv:
            at = argv.index(sub) + 1  # the checkpoint's data first, so that what the user gave comes after it
            super().parse_arguments(parser, [*argv[:at], "--data", json.dumps(checkpoint_data(ckpt)), *argv[at:]])

    def instantiate_classes(self) -> None:
        """Build model, data and trainer; a class that cannot be built is one line (its root cause)."""
        try:
            super().instantiate_classes()
        except ValueError as e:  # jsonargparse wraps the cause, e.g. a callback whose optional package is missing
            cause: BaseException = e
            while cause.__cause__ is not None:
                cause = cause.__cause__
            raise GenreTorchError(" ".join(str(cause).split())) from None

    def before_instantiate_classes(self) -> None:
        """Apply the process-wide settings before anything runs."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("num_threads") is not None:
            if config["num_threads"] < 1:
                raise GenreTorchError(f"--num_threads must be at least 1, got {config['num_threads']}")
            torch.set_num_threads(config["num_threads"])
        if config.get("float32_matmul_precision"):
            if config["float32_matmul_precision"] not in ("highest", "high", "medium"):
                raise GenreTorchError("--float32_matmul_precision must be highest, high or medium")
            torch.set_float32_matmul_precision(config["float32_matmul_precision"])
        _check_trainer(config.get("trainer") or {})
        _inject_optimizer(config, self.subcommand)
        model = config["model"]["init_args"] if "class_path" in config["model"] else config["model"]
        self.compiling = bool(model.get("compile"))
        kept = inherited_settings(getattr(self, "argv", []), model.get("backbone"))
        if kept:  # jsonargparse carried the config backbone's settings over to another class
            warnings.warn(kept, UserWarning, stacklevel=1)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """A TensorBoardLogger under runs/<dataset>/version_N (N claimed atomically), checkpoints beside it."""
        raw = self.config[self.subcommand] if self.subcommand else self.config
        model = raw["model"]["init_args"] if "class_path" in raw["model"] else raw["model"]
        for key in ("optimizer", "lr_scheduler"):  # the model has them: the saved config.yaml says them once, on top
            model[key] = None
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        dataset, ckpt_path = self.datamodule.spec.name, config.get("ckpt_path")
        if ckpt_path:
            check_checkpoint(ckpt_path, self.model, dataset)
            check_against(ckpt_path, data_file(self.datamodule))  # one warning line when code or data differ
        runs, checkpoints = Path(config["runs_dir"]) / dataset, Path(config["checkpoints_dir"]) / dataset
        default_logger = kwargs.get("logger") in (None, True) and config["trainer"].get("logger") in (None, True)
        trained = resumed_version(ckpt_path)
        version: int | str | None = trained if self.subcommand == "fit" else None
        if default_logger:
            evaluation = self.subcommand in ("test", "validate") and trained is not None
            if evaluation and (runs / f"version_{trained}").is_dir() and rank_zero_only.rank == 0:
                version = claim_evaluation(runs / f"version_{trained}", self.subcommand)  # in the run it evaluates
                self.claimed = [runs / version]
            elif version is None and rank_zero_only.rank == 0:
                version = claim_version(runs, checkpoints)
                self.claimed = [runs / f"version_{version}", checkpoints / f"version_{version}"]
            kwargs["logger"] = RunLogger(config["runs_dir"], name=dataset, version=version, default_hp_metric=False)
        callbacks = config["trainer"].get("callbacks") or []
        bar_given = any(isinstance(c, ProgressBar) for c in (callbacks if isinstance(callbacks, list) else [callbacks]))
        if config["trainer"].get("enable_progress_bar") is None and not sys.stdout.isatty() and not bar_given:
            kwargs["enable_progress_bar"] = False  # a redrawn bar floods logs and CI output: EpochLine prints instead
        _check_accelerator(config["trainer"])
        plugins = config["trainer"].get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):  # checkpoints written next to themselves, renamed
            kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
        try:
            trainer = super().instantiate_trainer(**kwargs)
            if not trainer.progress_bar_callback and self.subcommand == "fit":
                trainer.callbacks.append(EpochLine())
            if not any(isinstance(c, Provenance) for c in trainer.callbacks):  # code, data, machine of the run
                trainer.callbacks.append(Provenance())
            trainer.callbacks.append(StopOnSignal())
            problem = next(filter(None, (_unsupported(c, resuming=bool(ckpt_path)) for c in trainer.callbacks)), None)
            if problem:
                raise GenreTorchError(problem)
            run = run_checkpoint(trainer)
            _check_monitors(trainer, run)
            if run is not None and run.filename == DEFAULT_FILENAME and run.monitor not in (None, *SHOWN_METRICS):
                name = run.monitor.replace("/", "_")  # name the metric that chose the checkpoint
                run.filename = f"best-epoch{{epoch:03d}}-{name}{{{run.monitor}:.4f}}"
            if run is not None and run.save_last:  # last.ckpt after every epoch, not only after an improvement
                run.save_last = False
                trainer.callbacks.append(LatestCheckpoint(run))
            for ckpt in trainer.checkpoint_callbacks:  # a user's ModelCheckpoint too: all in the run's folder
                run_version = getattr(trainer.logger, "version", None)  # an evaluation's: its training's version
                run_version = trained if isinstance(run_version, str) else run_version
                if isinstance(ckpt, ModelCheckpoint) and ckpt.dirpath is None and run_version is not None:
                    ckpt.dirpath = str(checkpoints / f"version_{run_version}")
            group = getattr(self.datamodule, "batches_per_step", 1)
            if self.subcommand in ("fit", None) and group > 1:  # the opt-in fast path: its callback, its checks
                raw = self.config[self.subcommand] if self.subcommand else self.config
                fast.install(trainer, self.model, group, raw.get("checkpoint") or {})
        except GenreTorchError:
            raise
        except (MisconfigurationException, ValueError) as e:  # the Trainer's own checks of its options
            raise GenreTorchError(f"the Trainer refused its options: {' '.join(str(e).split())}") from None
        return trainer

    def after_fit(self) -> None:
        """Report the final model (best checkpoint, or SWA's/EMA's averaged weights), test it once, log hparams."""
        trainer = self.trainer
        signals.check(self.resume_hint())  # an interrupted fit is not a result: no test, no "best checkpoint"
        if trainer.fast_dev_run:
            return
        best = getattr(run_checkpoint(trainer), "best_model_path", "") or None
        label = "best checkpoint"
        if any(isinstance(c, StochasticWeightAveraging) for c in trainer.callbacks):
            # SWA put the averaged weights into the model at the end of training: they are the result
            best = str(Path(run_checkpoint(trainer).dirpath) / "swa.ckpt")
            trainer.save_checkpoint(best)
            label = "SWA checkpoint (averaged weights)"
        best = trainer.strategy.broadcast(best)
        # Training is over, so callbacks that act on training go before the final evaluation. A WeightAveraging
        # (EMA) checkpoint holds the averaged weights as its state_dict, the model validation chose it by and that
        # `genre-torch test` loads; left attached, the callback would restore the raw weights from it for the test.
        # BatchSizeFinder would search again in validate and test, resetting the trainer's step and epoch counts;
        # SpikeDetection cannot load the state it saved (pytorch-lightning 2.6 reads a missing attribute).
        averaging = any(isinstance(c, WeightAveraging) for c in trainer.callbacks)
        for callback in [c for c in trainer.callbacks if TRAINING_ONLY in _policy(c)[0]]:
            trainer.callbacks.remove(callback)
        if averaging:
            label = "best checkpoint (averaged weights)"
        loggers, trainer.loggers = trainer.loggers, []  # the best checkpoint's validation is no point of the curves
        try:
            val = trainer.validate(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)[0]
        finally:
            trainer.loggers = loggers
        test = {}
        config = self.config_init[self.subcommand]
        if config.get("test_after_fit", True):
            self.before_test()
            test = trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)[0]
        self.final_metrics = {**val, **test}  # the final model's, for scripts driving the CLI
        final = {f"hp/{k.replace('/', '_')}": float(v) for k, v in self.final_metrics.items()}
        log_final(trainer, self.hparams_for_logging(), {**final, "hp/epochs": float(trainer.current_epoch)})
        if trainer.is_global_zero:
            monitor = getattr(run_checkpoint(trainer), "monitor", None)
            shown = monitor in val and monitor not in SHOWN_METRICS
            chosen = f"  {monitor}: {float(val[monitor]):.4f}" if shown else ""
            print(f"{label}: {best or '(none saved; last weights)'}  val accuracy: {val['val/acc']:.4f}{chosen}")
            if test:
                print(f"test accuracy: {test['test/acc']:.4f}  macro-F1: {test['test/macro_f1']:.4f}")
            board = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
            if board is not None and board.log_dir:
                print(f"curves: tensorboard --logdir {Path(board.log_dir).parent}")

    def after_validate(self) -> None:
        """A signal during `validate` or `test` (even on its last batch, which Lightning completes): no result."""
        signals.check()

    after_test = after_validate

    def discard_unfinished(self) -> None:
        """A new run that stopped before its first checkpoint leaves nothing: remove the folders it claimed."""
        if self.claimed and not any(self.claimed[-1].glob("*.ckpt")):
            discard(self.claimed)
            self.claimed = []

    def resume_hint(self) -> str:
        """What an interrupted run kept and how to go on (the end of the line `genre-torch` prints)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or self.subcommand != "fit":
            return signals.AGAIN
        latest = next((c for c in trainer.callbacks if isinstance(c, LatestCheckpoint)), None)
        ckpt = run_checkpoint(trainer)
        path = (latest and latest.best_model_path) or (ckpt and (ckpt.last_model_path or ckpt.best_model_path))
        if not path or not Path(path).is_file():
            return "before the first checkpoint; nothing was kept: run the same command again"
        try:  # the checkpoint's own epoch: a signal can come between its save and the end of the epoch's loop
            epoch = torch.load(path, map_location="cpu", weights_only=True)["epoch"] + 1
        except Exception:  # unreadable: the resume itself will say so
            epoch = trainer.current_epoch
        return f"after epoch {epoch}; resume with --ckpt_path {path}"

    def before_test(self) -> None:
        """Attach the test callbacks (the report) for the test run."""
        self.trainer.callbacks.extend(c for c in self.test_callbacks if c not in self.trainer.callbacks)

    def hparams_for_logging(self) -> dict[str, Any]:
        """What tells runs apart in TensorBoard's HParams tab, first: the parts by class name and their settings, the
        optimiser, its schedule and the seed; then the data settings. Integers and lists as written (512, [64, 32])."""
        hp = self.model.hparams
        params: dict[str, Any] = {}
        for part in ("backbone", "criterion", "batch_transform", "optimizer", "lr_scheduler"):
            config = hp.get(part)
            params[part] = _component(config)[0] if config else "none"
            for key, value in (_component(config)[1] if config else {}).items():
                if key in HPARAM_SETTINGS.get(part, ()) or part in ("backbone", "criterion"):
                    params[f"{part}/{key}"] = value
        params["seed"] = self.config_init[self.subcommand].get("seed_everything")
        data = self.datamodule.hparams
        params.update({f"data/{k}": data[k] for k in HPARAM_DATA_KEYS if k in data})
        return {k: _as_written(v) for k, v in params.items()}


def _as_written(value: Any) -> Any:
    """An HParams value as the config wrote it: floats stay numbers, other values text (512, not 512.00)."""
    return value if isinstance(value, float) else str(value)


def _inject_optimizer(config: Any, subcommand: str | None) -> None:
    """Hand --optimizer / --lr_scheduler to the model, whose configure_optimizers applies them.

    A resumed fit keeps the checkpoint's (LightningCLI reads the model's settings from it): another one is refused,
    since its state could not be restored. test and validate do not use them.
    """
    if subcommand not in ("fit", None):
        return
    model = config["model"]
    model = model["init_args"] if "class_path" in model else model
    for key in ("optimizer", "lr_scheduler"):
        given, held = config.get(key), model.get(key)
        if held is not None and not config.get("ckpt_path"):
            raise GenreTorchError(f"set the {key.replace('_', ' ')} with --{key} (LightningCLI's), not --model.{key}")
        if held is not None and not _same_component(held, given):
            name = _component(given)[0] if given is not None else "none"
            raise GenreTorchError(
                f"--{key} {name} differs from the checkpoint's ({_component(held)[0]}): a resumed run keeps its "
                "optimiser and schedule (pass the run's own config)"
            )
        model[key] = given


def _component(value: Any) -> tuple[str, dict[str, Any]]:
    """A class_path + init_args config as (class name, init_args)."""
    value = value.as_dict() if hasattr(value, "as_dict") else dict(value)
    return str(value.get("class_path", "")).rpartition(".")[2], dict(value.get("init_args") or {})


def _same_component(a: Any, b: Any) -> bool:
    """Whether two configs name the same class with no setting given differently (unnamed ones are defaults)."""
    if a is None or b is None:
        return a is b
    (name_a, args_a), (name_b, args_b) = _component(a), _component(b)
    return name_a == name_b and all(args_b[k] == v for k, v in args_a.items() if k in args_b)


FINAL_RUN = "final"  # runs/<dataset>/version_N/final: the final metrics, which TensorBoard's HParams tab reads


def log_final(trainer: Trainer, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Give every logger the run's settings and final metrics (TensorBoard: one HParams row), then close it."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            _log_final_to_tensorboard(logger, params, metrics, trainer.global_step)
        else:  # Lightning's Logger API takes the two apart (CSVLogger has no metrics argument)
            logger.log_hyperparams(params)
            logger.log_metrics(metrics, step=trainer.global_step)
        logger.finalize("success")  # flush and close the writer


def final_name(name: str) -> str:
    """The metric name of a final metric: hp/val_acc -> val/acc, hp/test_macro_f1 -> test/macro_f1, hp/epochs ->
    fit/epochs (no `hp` chart group of single points sorted above the curves)."""
    name = name.removeprefix("hp/")
    stage, _, rest = name.partition("_")
    return f"{stage}/{rest}" if stage in ("train", "val", "test") and rest else f"fit/{name}"


@rank_zero_only
def _log_final_to_tensorboard(
    logger: TensorBoardLogger, params: dict[str, Any], metrics: dict[str, float], step: int
) -> None:
    """One HParams row: the settings in the run's own events, the final metrics as single points at the last step in
    its `final` sub-run (Lightning's log_hyperparams would write them at step 0 into the run's own chart groups)."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    logger.log_hyperparams(params)  # hparams.yaml; no metrics: Lightning writes no summary
    rank = {name: i for i, name in enumerate(FIRST_METRICS)}
    finals = sorted(((final_name(k), float(v)) for k, v in metrics.items()), key=lambda f: rank.get(f[0], len(rank)))
    names = {board_tag(name): name for name, _ in finals}  # tag -> the metric's name, shown in HParams
    tags = {board_tag(name): value for name, value in finals}
    with SummaryWriter(str(Path(logger.log_dir) / FINAL_RUN)) as final:
        for tag, value in tags.items():
            final.add_scalar(tag, value, global_step=step)
    experiment, start, end = hparams(params, tags)
    plugin = experiment.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(plugin.content)
    for info in data.experiment.metric_infos:  # read from <run>/final
        info.name.group = FINAL_RUN
        info.display_name = names[info.name.tag]
    for hparam in data.experiment.hparam_infos:
        hparam.differs = hparam.name in HPARAM_SHOWN
    plugin.content = data.SerializeToString()
    with SummaryWriter(str(logger.log_dir)) as writer:  # the run's own writer is closed after the test
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary)


def run_checkpoint(trainer: Trainer) -> ModelCheckpoint | None:
    """The run's ModelCheckpoint (`--checkpoint.*`), which keeps the best model.

    Lightning's `trainer.checkpoint_callback` is the first ModelCheckpoint in the list: a user's own
    (`--trainer.callbacks+=ModelCheckpoint`, or OnExceptionCheckpoint, a subclass that saves only on an exception)
    when one is given. LightningCLI adds `--checkpoint` after the trainer's callbacks and Lightning keeps the order
    of checkpoint callbacks, so the run's is the last.
    """
    others = (OnExceptionCheckpoint, LatestCheckpoint)
    return next((c for c in reversed(trainer.checkpoint_callbacks) if not isinstance(c, others)), None)


def _check_monitors(trainer: Trainer, run: ModelCheckpoint | None) -> None:
    """An EarlyStopping among --trainer.callbacks watching another metric than the run's checkpoint is refused: the
    best checkpoint would be chosen by one metric and training stopped by another, with no word."""
    for callback in trainer.callbacks:
        if isinstance(callback, EarlyStopping) and run is not None and run.monitor and callback.monitor != run.monitor:
            raise GenreTorchError(
                f"an EarlyStopping watches {callback.monitor}, the run's checkpoint {run.monitor}: set "
                f"--early_stopping.monitor {callback.monitor} --early_stopping.mode {callback.mode} instead, which "
                "sets both"
            )


# What a fit does with Lightning callbacks it cannot simply run, keyed on their classes (the fast path's own
# limits: training/fast.py). REFUSE and NO_RESUME are one-line errors at startup; TRAINING_ONLY callbacks are taken
# off before the final validation and test of the best checkpoint (see after_fit).
REFUSE, NO_RESUME, TRAINING_ONLY = "refuse", "refuse on resume", "training only"
CALLBACK_POLICIES: dict[type, tuple[frozenset[str], str]] = {
    ModelPruning: (
        frozenset({REFUSE}),
        "ModelPruning is not supported: with it a checkpoint does not hold the model its validation measured, "
        "so the best checkpoint and its test would be another model (docs/design.md)",
    ),
    BackboneFinetuning: (
        frozenset({REFUSE}),
        "BackboneFinetuning is not supported: it freezes the module's `backbone`, which here is the whole "
        "network, head included, so nothing would train",
    ),
    SpikeDetection: (
        frozenset({NO_RESUME, TRAINING_ONLY}),
        "SpikeDetection cannot resume: pytorch-lightning's SpikeDetection.load_state_dict fails on the state it "
        "saved; drop it from the callbacks to resume, or start a new run",
    ),
    WeightAveraging: (frozenset({TRAINING_ONLY}), ""),
    BatchSizeFinder: (frozenset({TRAINING_ONLY}), ""),
}


def _policy(callback: Callback) -> tuple[frozenset[str], str]:
    """The policies of a callback and the line that explains a refusal (none for most callbacks)."""
    return next((p for cls, p in CALLBACK_POLICIES.items() if isinstance(callback, cls)), (frozenset(), ""))


def _unsupported(callback: Callback, resuming: bool) -> str | None:
    """Why a Lightning callback cannot run in a genre-torch fit (one line), or None."""
    policies, why = _policy(callback)
    return why if REFUSE in policies or (resuming and NO_RESUME in policies) else None


def _check_trainer(trainer: dict[str, Any]) -> None:
    """One-line errors for Trainer numbers outside their range, before anything is built."""
    for key in ("max_epochs", "min_epochs"):
        value = trainer.get(key)
        if value is not None and value < -1:
            raise GenreTorchError(f"--trainer.{key} must be >= 0 (or -1 for no limit), got {value}")
    if (trainer.get("max_steps") or -1) < -1:
        raise GenreTorchError(f"--trainer.max_steps must be >= 0 (or -1 for no limit), got {trainer['max_steps']}")
    if trainer.get("enable_checkpointing") is False:
        raise GenreTorchError(
            "--trainer.enable_checkpointing false conflicts with the run's checkpoint callback; to write no "
            "checkpoint, pass --checkpoint.save_top_k 0 --checkpoint.save_last false (fit then tests the last weights)"
        )
    clip = trainer.get("gradient_clip_val")
    if clip is not None and clip < 0:
        raise GenreTorchError(f"--trainer.gradient_clip_val must be >= 0, got {clip}")


def _check_accelerator(trainer: dict[str, Any]) -> None:
    """A GPU asked for where there is none is one line, not Lightning's traceback."""
    accelerator = str(trainer.get("accelerator") or "auto")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise GenreTorchError(
            f"--trainer.accelerator {accelerator}: no CUDA GPU is visible on this machine; "
            "use --trainer.accelerator auto (or cpu), e.g. drop configs/presets/gpu.yaml"
        )
