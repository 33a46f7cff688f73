"""Lightning's own options, callbacks and hooks behave as the Lightning documentation says (observable effects)."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genre_torch.cli import main, run_cli
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.training.module import GenreClassifier
from tests.fault_tools import one_line_error

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# 600 synthetic rows: 420 training rows, 7 batches of 64 per epoch
FIT = ["fit", "--config", str(CONFIGS / "music_genre.yaml"), "--trainer.enable_progress_bar", "false"]
FIT += ["--data.batch_size", "64", "--trainer.max_epochs", "2", "--early_stopping.patience", "100"]
STEPS = 7


def scalars(run_dir: str | Path, tag: str) -> list:
    """The TensorBoard events of one scalar tag."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return events.Scalars(tag) if tag in events.Tags()["scalars"] else []


class StepCounter(pl.Callback):
    """Counts the per-step hooks and records what the batch hooks receive."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.batches: list = []

    def _count(self, hook: str) -> None:
        self.calls[hook] = self.calls.get(hook, 0) + 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._count("on_train_batch_start")
        self.batches.append(batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._count("on_train_batch_end")

    def on_before_backward(self, trainer, pl_module, loss) -> None:  # noqa: ANN001
        self._count("on_before_backward")

    def on_after_backward(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._count("on_after_backward")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
        self._count("on_before_optimizer_step")


def fit_with(callbacks: list[pl.Callback], *args: str):  # noqa: ANN201
    """Build the fit of FIT + args, add callbacks, train without the final test."""
    cli = run_cli([*FIT[1:], *args], run=False)
    cli.trainer.callbacks.extend(callbacks)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def test_user_callback_hooks_fire_once_per_optimiser_step_with_an_xy_batch(data_env) -> None:
    counter = StepCounter()
    cli = fit_with([counter])
    assert cli.trainer.global_step == 2 * STEPS
    assert counter.calls == dict.fromkeys(
        ["on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward",
         "on_before_optimizer_step"], 2 * STEPS,
    )  # fmt: skip
    x, y = counter.batches[0]
    assert x.shape == (64, cli.model.hparams.num_features) and y.shape == (64,)


def test_gradient_clipping_from_the_trainer_clips(data_env) -> None:
    moved = {}
    for name, extra in (("free", []), ("clipped", ["--trainer.gradient_clip_val", "1e-9"])):
        cli = run_cli([*FIT[1:], "--trainer.max_steps", "1", "--lr_scheduler", "null", *extra], run=False)
        before = {k: v.clone() for k, v in cli.model.state_dict().items()}
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        moved[name] = max((v - before[k]).abs().max() for k, v in cli.model.state_dict().items() if "backbone" in k)
    # Adam's first step (constant lr) moves every weight by about lr; a gradient clipped to 1e-9 is below Adam's eps
    assert moved["free"] > 5e-4 and moved["clipped"] < 0.2 * moved["free"]


def test_accumulate_grad_batches_and_the_accumulation_scheduler(data_env) -> None:
    cli = fit_with([], "--trainer.accumulate_grad_batches", "2")
    assert cli.trainer.global_step == 2 * 4  # ceil(7 / 2) optimiser steps an epoch
    scheduled = fit_with([pl.callbacks.GradientAccumulationScheduler({0: 1, 1: 3})])
    assert scheduled.trainer.global_step == STEPS + 3  # epoch 0: 7 steps; epoch 1: ceil(7 / 3)


def test_limit_train_batches_max_steps_and_val_check_interval(data_env) -> None:
    assert fit_with([], "--trainer.limit_train_batches", "3").trainer.global_step == 2 * 3
    assert fit_with([], "--trainer.max_steps", "5").trainer.global_step == 5
    cli = fit_with([], "--trainer.val_check_interval", "0.5")
    assert len(scalars(cli.trainer.log_dir, "val/acc")) == 2 * 2  # twice per epoch


def test_learning_rate_monitor_logs_every_optimiser_step(data_env) -> None:
    monitor = pl.callbacks.LearningRateMonitor(logging_interval="step")
    cli = fit_with([monitor], "--lr_scheduler", "WarmupCosine")
    points = scalars(cli.trainer.log_dir, "lr-Adam")
    assert len(points) == 2 * STEPS and points[0].value > points[-1].value  # the cosine schedule, step by step


def test_scalars_are_plotted_against_optimiser_steps_on_both_paths(data_env) -> None:
    for path in ([], ["--data.batches_per_step", "3"]):
        cli = fit_with([], *path)
        for tag in ("train/loss", "val/acc"):  # Lightning's x of an epoch: the index of its last step
            steps = sorted({e.step for e in scalars(cli.trainer.log_dir, tag)})
            assert steps == [STEPS - 1, 2 * STEPS - 1], (path, tag, steps)
        assert not scalars(cli.trainer.log_dir, "epoch")  # no `epoch` chart group above the curves


class StepLogger(GenreClassifier):
    """A researcher's module that logs its loss at every step."""

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        loss = super().training_step(batch, batch_idx)
        self.log("train/step_loss", loss, on_step=True, on_epoch=False)
        return loss


def test_self_log_on_step_gives_one_point_per_step(data_env) -> None:
    cli = run_cli([*FIT[1:]], run=False)
    model = StepLogger(**{k: v for k, v in cli.model.hparams.items() if not k.startswith("_")})
    cli.trainer.fit(model, datamodule=cli.datamodule)
    assert len(scalars(cli.trainer.log_dir, "train/step_loss")) == 2 * STEPS


def test_mixed_precision_runs_the_forward_in_low_precision(data_env) -> None:
    seen: list[torch.dtype] = []
    cli = run_cli([*FIT[1:], "--trainer.precision", "bf16-mixed", "--trainer.max_steps", "2"], run=False)
    cli.model.backbone.head.register_forward_hook(lambda module, inputs, out: seen.append(out.dtype))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert torch.bfloat16 in seen and all(p.dtype == torch.float32 for p in cli.model.parameters())


@pytest.mark.parametrize("precision", ["64-true", "bf16-true"])
def test_true_precision_trains_and_tests_in_that_dtype(data_env, precision: str) -> None:
    # the test report's projector embeddings called the model with float32 rows, outside Lightning's precision
    fitted = run_cli([*FIT, "--trainer.precision", precision])
    dtype = {"64-true": torch.float64, "bf16-true": torch.bfloat16}[precision]
    assert "test/acc" in fitted.final_metrics and all(p.dtype == dtype for p in fitted.model.parameters())


def test_swa_weights_are_the_final_checkpoint_and_what_is_tested(data_env, capsys) -> None:
    swa = ["--trainer.callbacks+=StochasticWeightAveraging", "--trainer.callbacks.swa_lrs", "0.01"]
    main([*FIT, "--trainer.max_epochs", "4", *swa])
    out = capsys.readouterr().out
    assert "SWA checkpoint (averaged weights): " in out
    path = Path(out.split("SWA checkpoint (averaged weights): ")[1].split()[0])
    saved = torch.load(path, weights_only=True)
    best = next(p for p in path.parent.glob("best-*.ckpt"))
    other = torch.load(best, weights_only=True)["state_dict"]
    assert any(not torch.equal(v, other[k]) for k, v in saved["state_dict"].items())
    tested = run_cli(["test", "--config", str(CONFIGS / "music_genre.yaml"), "--ckpt_path", str(path)])
    assert f"test accuracy: {float(tested.trainer.callback_metrics['test/acc']):.4f}" in out


def test_ema_weights_are_what_is_validated_and_tested(data_env, capsys) -> None:
    ema = ["--trainer.callbacks+=EMAWeightAveraging", "--trainer.callbacks.decay", "0.9"]
    fitted = run_cli([*FIT, "--trainer.max_epochs", "3", *ema])
    out = capsys.readouterr().out
    path = fitted.trainer.checkpoint_callback.best_model_path
    saved = torch.load(path, weights_only=True)
    raw = saved["current_model_state"]  # Lightning keeps the raw weights beside the averaged state_dict
    assert any(not torch.equal(v, raw[k]) for k, v in saved["state_dict"].items())
    tested = run_cli(["test", "--config", str(CONFIGS / "music_genre.yaml"), "--ckpt_path", path])
    # fit's own test measured the averaged weights too, not the raw ones the callback would restore
    assert fitted.final_metrics["test/loss"] == pytest.approx(float(tested.trainer.callback_metrics["test/loss"]))
    assert f"best checkpoint (averaged weights): {path}" in out


def test_tuner_callbacks_change_what_the_schedule_is_built_from(data_env) -> None:
    # LearningRateFinder and BatchSizeFinder run at fit start, after Lightning built the optimiser and its schedule
    onecycle = ["--lr_scheduler", "OneCycle", "--trainer.max_epochs", "2"]
    found = run_cli(
        [*FIT, *onecycle, "--trainer.callbacks+=LearningRateFinder", "--trainer.callbacks.num_training_steps", "20"]
    )
    peak = found.trainer.lr_scheduler_configs[0].scheduler.optimizer.param_groups[0]["max_lr"]
    lr = found.model.hparams.optimizer["init_args"]["lr"]  # the checkpoint and HParams say what was used
    assert lr != 0.01 and peak == pytest.approx(lr) and found.model.lr == lr  # the suggestion is used
    sized = run_cli([*FIT, *onecycle, "--trainer.callbacks+=BatchSizeFinder", "--trainer.callbacks.max_trials", "3"])
    assert sized.datamodule.hparams.batch_size == 8  # Lightning's power mode, 3 trials: 2, 4, 8
    steps = 2 * len(sized.datamodule.train_dataloader())
    assert sized.trainer.lr_scheduler_configs[0].scheduler.total_steps == sized.trainer.global_step == steps


def test_timer_callback_from_the_command_line_stops_the_run(data_env) -> None:
    # its default interval is an enum, which the config check could not dump: a traceback before training
    timed = run_cli(
        [
            *FIT,
            "--trainer.max_epochs",
            "50",
            "--trainer.callbacks+=Timer",
            "--trainer.callbacks.duration",
            "00:00:00:00",
        ]
    )
    assert timed.trainer.global_step < 50 * STEPS and "test/acc" in timed.final_metrics


def test_spike_detection_trains_and_is_refused_on_resume(data_env, capsys) -> None:
    spikes = ["--trainer.callbacks+=SpikeDetection"]
    fitted = run_cli([*FIT, *spikes])  # the final test loads the best checkpoint: SpikeDetection is taken off first
    assert "test/acc" in fitted.final_metrics
    last = Path(fitted.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        main([*FIT, *spikes, "--trainer.max_epochs", "3", "--ckpt_path", str(last)])
    assert exit_info.value.code == 2 and "SpikeDetection cannot resume" in capsys.readouterr().err


def test_a_users_own_checkpoint_and_progress_bar_callbacks(data_env, capsys) -> None:
    own = ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor", "val/acc"]
    bar = ["--trainer.callbacks+=TQDMProgressBar", "--trainer.callbacks.refresh_rate", "50"]
    assert FIT[3:5] == ["--trainer.enable_progress_bar", "false"]
    fitted = run_cli([*FIT[:3], *FIT[5:], *own, *bar])  # not a TTY: the default bar is off, one asked for is kept
    folder = Path("checkpoints/music_genre/version_0")
    assert not list(Path("runs").rglob("*.ckpt")) and list(folder.glob("epoch=*.ckpt"))  # the user's, beside ours
    best = Path(fitted.trainer.checkpoint_callback.best_model_path)  # Lightning's first: the user's
    ours = sorted(folder.glob("best-*.ckpt"))[-1]
    assert best.name.startswith("epoch=") and f"best checkpoint: {ours}" in capsys.readouterr().out


def test_other_loggers_get_the_final_metrics(data_env, capsys) -> None:
    csv = ["--trainer.logger+=CSVLogger", "--trainer.logger.save_dir", "csv"]
    board = ["--trainer.logger+=TensorBoardLogger", "--trainer.logger.save_dir", "board"]
    fitted = run_cli([*FIT, *csv, *board])  # CSVLogger.log_hyperparams takes no metrics: fit died at the end
    logged = Path("csv/lightning_logs/version_0/metrics.csv").read_text().splitlines()[0].split(",")
    assert "hp/test_acc" in logged and "test/acc" in fitted.final_metrics
    assert "curves: tensorboard --logdir board/lightning_logs" in capsys.readouterr().out


def test_an_exception_checkpoint_leaves_the_best_checkpoint_where_it_belongs(data_env, capsys) -> None:
    # OnExceptionCheckpoint is a ModelCheckpoint too, and the first one is Lightning's trainer.checkpoint_callback
    cli = run_cli([*FIT, "--trainer.callbacks+=OnExceptionCheckpoint", "--trainer.callbacks.dirpath", "on_error"])
    best = sorted(Path("checkpoints/music_genre/version_0").glob("best-*.ckpt"))
    assert best and f"best checkpoint: {best[-1]}" in capsys.readouterr().out
    assert not list(Path("runs").rglob("*.ckpt")) and not Path("on_error").exists()
    assert cli.final_metrics["test/acc"] == pytest.approx(
        float(
            run_cli(
                ["test", "--config", str(CONFIGS / "music_genre.yaml"), "--ckpt_path", str(best[-1])]
            ).trainer.callback_metrics["test/acc"]
        )
    )


class WeightsAtEpochStart(pl.Callback):
    """Copies the learnable weights at the start of every epoch (after SWA's own epoch-start work)."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.weights[trainer.current_epoch] = {n: p.detach().clone() for n, p in pl_module.named_parameters()}


def test_swa_batch_norm_epoch_does_not_train(data_env) -> None:
    swa, seen = pl.callbacks.StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=2), WeightsAtEpochStart()
    resmlp = ["--model.backbone", "ResMLP", "--model.backbone.norm", "batch"]  # MLP's norm: null would carry over
    cli = fit_with([swa, seen], *resmlp, "--trainer.max_epochs", "4")
    # SWA adds an epoch that only recomputes BatchNorm statistics: it starts from the averaged weights and
    # must leave them as they are (Lightning runs it without backward; it counts one empty step)
    assert set(seen.weights) == {0, 1, 2, 3, 4} and cli.trainer.global_step <= 4 * STEPS + 1
    final = dict(cli.model.named_parameters())
    assert all(torch.equal(final[n], w) for n, w in seen.weights[4].items())
    assert any(not torch.equal(final[n], w) for n, w in seen.weights[3].items())


def test_lightning_cli_optimizer_and_lr_scheduler_are_injected(data_env) -> None:
    sgd = [
        "--optimizer",
        "SGD",
        "--optimizer.lr",
        "0.05",
        "--optimizer.momentum",
        "0.9",
        "--optimizer.nesterov",
        "true",
    ]
    step = ["--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "1", "--lr_scheduler.gamma", "0.5"]
    cli = run_cli([*FIT, *sgd, *step, "--trainer.max_epochs", "2"])
    opt = cli.trainer.optimizers[0]
    assert (
        isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9
    )
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**2)  # stepped once per epoch
    ckpt = torch.load(cli.trainer.checkpoint_callback.best_model_path, weights_only=True)
    assert ckpt["hyper_parameters"]["optimizer"]["class_path"].endswith("SGD")
    assert ckpt["hyper_parameters"]["lr_scheduler"]["init_args"]["step_size"] == 1
    assert (
        "step" in ckpt["optimizer_states"][0]["state"][0]
        or "momentum_buffer" in ckpt["optimizer_states"][0]["state"][0]
    )


def test_a_schedule_over_the_run_refuses_a_resume_that_changes_its_length(capsys, data_env) -> None:
    run_cli([*FIT, "--lr_scheduler", "OneCycle", "--trainer.max_epochs", "2"])
    last = next(Path("checkpoints").rglob("last.ckpt"))
    err = one_line_error(
        capsys, *FIT, "--lr_scheduler", "OneCycle", "--trainer.max_epochs", "3", "--ckpt_path", str(last)
    )
    assert "learning-rate schedule spans" in err and "resume with the run's own settings" in err
    err = one_line_error(capsys, *FIT, "--optimizer", "SGD", "--optimizer.lr", "0.1", "--ckpt_path", str(last))
    assert "differs from the checkpoint's (Adam)" in err


def test_resuming_a_finished_run_keeps_the_best_checkpoint(data_env) -> None:
    stop = ["--early_stopping.monitor", "val/acc", "--early_stopping.mode", "max", "--early_stopping.patience", "1"]
    first = run_cli([*FIT, "--trainer.max_epochs", "60", *stop])
    best = Path(first.trainer.checkpoint_callback.best_model_path)
    last = best.parent / "last.ckpt"
    saved = [torch.load(p, weights_only=True) for p in (best, last)]
    assert not last.is_symlink() and saved[0]["epoch"] < saved[1]["epoch"] == first.trainer.current_epoch - 1
    best_bytes = best.read_bytes()
    again = run_cli([*FIT, "--trainer.max_epochs", "60", *stop, "--ckpt_path", str(last)])
    assert again.trainer.global_step == first.trainer.global_step  # it had stopped early: nothing more to train
    assert Path(again.trainer.checkpoint_callback.best_model_path) == best and best.read_bytes() == best_bytes
    assert again.final_metrics["test/acc"] == first.final_metrics["test/acc"]
    assert sorted(p.name for p in best.parent.iterdir()) == sorted([best.name, "last.ckpt"])


def test_last_checkpoint_is_the_latest_epoch_and_a_resume_keeps_only_the_best(data_env) -> None:
    # lr 0: validation never improves after the first epoch, so Lightning's save_last would stay at epoch 0
    args = [*FIT, "--optimizer.lr", "0", "--lr_scheduler", "null", "--trainer.max_epochs", "3"]
    first = run_cli(args)
    best = Path(first.trainer.checkpoint_callback.best_model_path)
    last = best.parent / "last.ckpt"
    assert torch.load(best, weights_only=True)["epoch"] == 0 and torch.load(last, weights_only=True)["epoch"] == 2
    stray = best.parent / "best-epoch001-val_acc0.1234.ckpt"  # written after last.ckpt by a run killed then
    stray.write_bytes(best.read_bytes())
    run_cli([*args, "--trainer.max_epochs", "4", "--ckpt_path", str(last)])
    assert sorted(p.name for p in best.parent.iterdir()) == sorted([best.name, "last.ckpt"])
    assert torch.load(last, weights_only=True)["epoch"] == 3
    steps = [e.step for e in scalars(first.trainer.logger.log_dir, "val/loss")]
    assert len(steps) == len(set(steps))  # no epoch replayed


def test_fast_path_trains_exactly_like_the_standard_path(data_env) -> None:
    args = ["--model.backbone.dropout", "0.2", "--lr_scheduler", "OneCycle", "--model.batch_transform", "Mixup"]
    modes = OptimisationMode(), OptimisationMode()
    standard = fit_with([modes[0]], *args)
    fast = fit_with([modes[1]], *args, "--data.batches_per_step", "3")
    assert modes[0].automatic == {True} and modes[1].automatic == {False}
    assert standard.trainer.global_step == fast.trainer.global_step == 2 * STEPS
    for key, value in standard.model.state_dict().items():
        assert torch.allclose(value, fast.model.state_dict()[key], atol=1e-6), key
    capped = fit_with([], "--data.batches_per_step", "4", "--trainer.max_steps", "5")
    assert capped.trainer.global_step == 5  # max_steps inside a group


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trainer.accumulate_grad_batches", "2"], "cannot honour --trainer.accumulate_grad_batches"),
        (["--trainer.gradient_clip_val", "1.0"], "cannot honour --trainer.gradient_clip_val"),
        (["--trainer.limit_train_batches", "3"], "cannot honour --trainer.limit_train_batches"),
        (["--trainer.val_check_interval", "0.5"], "cannot honour --trainer.val_check_interval"),
        (["--trainer.callbacks+=LearningRateMonitor", "--trainer.callbacks.logging_interval", "step"],
         "cannot honour LearningRateMonitor"),
        (["--trainer.callbacks+=StochasticWeightAveraging", "--trainer.callbacks.swa_lrs", "0.01"],
         "cannot honour StochasticWeightAveraging"),
        (["--checkpoint.every_n_train_steps", "5"], "cannot honour --checkpoint.every_n_train_steps"),
        (["--trainer.callbacks+=LearningRateFinder"], "cannot honour LearningRateFinder"),
    ],
)  # fmt: skip
def test_fast_path_refuses_what_it_cannot_honour(capsys, data_env, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*FIT, "--data.batches_per_step", "4", *args])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and message in err and err.startswith("genre-torch: error: ")
    assert not [p for p in Path(".").rglob("version_*")]  # refused before any run folder was kept


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trainer.enable_checkpointing", "false"], "--checkpoint.save_top_k 0 --checkpoint.save_last false"),
        (["--trainer.barebones", "true"], "the Trainer refused its options: `Trainer(barebones=True"),
        (["--trainer.limit_val_batches", "0.01"], "Please increase the `limit_val_batches` argument"),
        (["--trainer.callbacks+=ModelPruning", "--trainer.callbacks.pruning_fn", "l1_unstructured"],
         "ModelPruning is not supported"),
        (["--trainer.callbacks+=BackboneFinetuning"], "BackboneFinetuning is not supported"),
        pytest.param(["--trainer.callbacks+=RichProgressBar"], "`RichProgressBar` requires `rich`",
                     marks=pytest.mark.skipif(importlib.util.find_spec("rich") is not None, reason="rich installed")),
    ],
)  # fmt: skip
def test_lightning_refusals_are_one_line(capfd, data_env, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*FIT, *args])
    err = capfd.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("genre-torch: error: ")


class OptimisationMode(pl.Callback):
    """Records whether each training epoch ran with automatic optimisation."""

    def __init__(self) -> None:
        self.automatic: set[bool] = set()

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.automatic.add(pl_module.automatic_optimization)


def test_fast_path_is_a_callback_and_the_module_has_no_branch_of_it(data_env) -> None:
    from genre_torch.core.training.fast import FastPath

    text = inspect.getsource(inspect.getmodule(GenreClassifier))
    assert "fast" not in text.replace("fast_dev_run", "")
    cli = run_cli([*FIT[1:], "--data.batches_per_step", "3"], run=False)
    assert sum(isinstance(c, FastPath) for c in cli.trainer.callbacks) == 1
    plain = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(GenreTorchError, match="FastPath"):  # grouped batches need the callback
        plain.fit(cli.model, datamodule=cli.datamodule)
    for _ in range(2):  # from Python: the callback beside the datamodule; a fitted module fits again
        trainer = pl.Trainer(
            max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, callbacks=[FastPath()]
        )
        trainer.fit(cli.model, datamodule=cli.datamodule)
        assert trainer.global_step == STEPS


def test_fast_path_refuses_batch_hooks_of_callbacks_and_module_overrides(data_env) -> None:
    with pytest.raises(GenreTorchError, match="cannot honour StepCounter: it overrides on_train_batch_start"):
        fit_with([StepCounter()], "--data.batches_per_step", "4")
    cli = run_cli([*FIT[1:], "--data.batches_per_step", "4"], run=False)
    model = StepLogger(**{k: v for k, v in cli.model.hparams.items() if not k.startswith("_")})
    with pytest.raises(GenreTorchError, match="cannot honour StepLogger.training_step"):
        cli.trainer.fit(model, datamodule=cli.datamodule)


def test_focal_loss_is_the_training_and_validation_criterion(data_env) -> None:
    cli = fit_with([], "--model.criterion", "FocalLoss", "--model.criterion.gamma", "2.0")
    x, y = cli.datamodule.tensors["val"]
    model = cli.model.eval()
    with torch.no_grad():
        expected = model.criterion(model(x), y)
    cli.trainer.validate(model, datamodule=cli.datamodule, verbose=False)
    assert torch.allclose(cli.trainer.callback_metrics["val/loss"], expected, atol=1e-5)
    plain = torch.nn.functional.cross_entropy(model(x), y)
    assert not torch.allclose(expected, plain, atol=1e-3)  # really the focal loss, not cross-entropy


METRICS = """
model:
  metrics:
    top3_acc: {class_path: torchmetrics.classification.MulticlassAccuracy, init_args: {top_k: 3}}
    recall: {class_path: torchmetrics.classification.MulticlassRecall, init_args: {average: null}}
    ece: {class_path: torchmetrics.classification.MulticlassCalibrationError}
"""


def test_torchmetrics_from_the_config_are_logged_and_one_can_choose_the_checkpoint(capsys, data_env) -> None:
    Path("metrics.yaml").write_text(METRICS)
    monitor = ["--early_stopping.monitor", "val/top3_acc", "--early_stopping.mode", "max"]
    cli = run_cli([*FIT, "--config", "metrics.yaml", *monitor])
    out = capsys.readouterr().out
    logged = cli.trainer.logged_metrics
    assert {"test/top3_acc", "test/ece", "test/recall/0", "test/recall/3"} <= set(logged)
    assert float(logged["test/top3_acc"]) >= float(logged["test/acc"])
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert cli.trainer.checkpoint_callback.monitor == "val/top3_acc" and "-val_top3_acc" in best.name
    assert "val/top3_acc" in out.splitlines()[0] and "  val/top3_acc: " in out  # each epoch and the summary
    for tag in ("val/top3_acc", "val/ece", "val/recall/0"):
        assert len(scalars(cli.trainer.logger.log_dir, tag)) >= 2, tag
    err = one_line_error(capsys, *FIT, "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/acc")
    assert "an EarlyStopping watches val/acc, the run's checkpoint val/loss" in err
