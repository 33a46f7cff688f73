"""The command line end to end on synthetic data: fit, test, configs, checkpoints, resume, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genre_torch.cli import main, run_cli
from genre_torch.core.compat import data_state
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.training.module import GenreClassifier

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = ["--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false", "--data.batch_size", "64"]


def fit(dataset: str, *extra: str) -> list[str]:
    return ["fit", "--config", str(CONFIGS / f"{dataset}.yaml"), *FAST, *extra]


@pytest.mark.parametrize("dataset", ["music_genre", "spotify_tracks"])
def test_fit_then_test_through_main(data_env, capsys, dataset: str) -> None:
    main(fit(dataset))
    out = capsys.readouterr().out
    acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert acc > 0.5  # 4 separable synthetic genres: chance is 0.25
    best = Path(re.search(r"best checkpoint: (\S+)", out).group(1))
    assert best.parent == Path("checkpoints") / dataset / "version_0" and (best.parent / "last.ckpt").is_file()
    events = EventAccumulator(str(Path("runs") / dataset / "version_0")).Reload()
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "z_test/acc"} <= set(events.Tags()["scalars"])
    assert not [tag for tag in events.Tags()["scalars"] if tag.startswith("hp/")]  # no chart group above the curves
    final = EventAccumulator(str(Path("runs") / dataset / "version_0" / "final")).Reload()  # HParams reads these
    assert {"val/acc", "z_test/acc", "z_test/macro_f1", "z_fit/epochs"} <= set(final.Tags()["scalars"])
    (point,) = final.Scalars("z_test/acc")
    assert point.value == pytest.approx(acc, abs=1e-4)
    assert point.step >= events.Scalars("train/loss")[-1].step  # at the end of the curves, not at step 0
    assert len(events.Scalars("val/loss")) == 3  # one point per epoch (the best model's validation is no point)
    assert "tensorboard --logdir runs/" + dataset in out
    cli = run_cli(["test", "--config", str(CONFIGS / f"{dataset}.yaml"), "--ckpt_path", str(best)])
    assert round(float(cli.trainer.callback_metrics["test/acc"]), 4) == acc


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
@pytest.mark.parametrize("preset", [None, *sorted(p.name for p in (CONFIGS / "presets").glob("*.yaml"))])
def test_every_config_parses(capsys, config: str, preset: str | None) -> None:
    args = ["fit", "--config", str(CONFIGS / config)]
    if preset:
        args += ["--config", str(CONFIGS / "presets" / preset)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path: pytorch_lightning" not in capsys.readouterr().out.replace("pytorch_lightning.", "")


def test_train_metrics_are_the_epoch_means_over_every_training_row(data_env) -> None:
    # lr 0: the weights stay at their initialisation, so the epoch's running metrics must equal one pass
    cli = run_cli(
        fit("spotify_tracks", "--optimizer.lr", "0", "--trainer.max_epochs", "1")[1:], run=False
    )  # no subcommand
    cli.datamodule.setup("fit")
    x, y = cli.datamodule.tensors["train"]
    with torch.no_grad():
        logits = cli.model(x)
        loss, acc = torch.nn.functional.cross_entropy(logits, y), (logits.argmax(1) == y).float().mean()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    logged = cli.trainer.callback_metrics
    assert torch.allclose(logged["train/loss"], loss, atol=1e-5) and torch.allclose(logged["train/acc"], acc)


def test_same_seed_same_result_and_checkpoint_round_trip(data_env) -> None:
    cli_a = run_cli(fit("music_genre", "--model.backbone.dropout", "0.2"))
    cli_b = run_cli(fit("music_genre", "--model.backbone.dropout", "0.2"))
    metric = "test/acc"
    assert cli_a.trainer.callback_metrics[metric] == cli_b.trainer.callback_metrics[metric]

    best = cli_a.trainer.checkpoint_callback.best_model_path
    ckpt = torch.load(best, weights_only=True)  # only plain tensors and primitives inside
    restored = GenreClassifier.load_from_checkpoint(best, map_location="cpu").eval()
    x = cli_a.datamodule.tensors["test"][0].cpu()  # on the GPU where there is one
    trained = GenreClassifier.load_from_checkpoint(best, map_location="cpu").eval()
    assert torch.equal(restored(x), trained(x))
    pre = Preprocessor.from_state_dict(data_state(ckpt)["preprocessor"])
    dm = cli_a.datamodule
    assert torch.equal(pre.transform(dm.frame.iloc[dm.splits["test"]]), x)
    assert data_state(ckpt)["dataset"] == "music_genre" and pre.classes == dm.preprocessor.classes
    assert data_state(ckpt) is ckpt["GenreDataModule"]  # the datamodule's state_dict, saved by Lightning


def test_resume_matches_uninterrupted_run(data_env) -> None:
    common = ["--model.backbone.dropout", "0.3", "--early_stopping.patience", "100"]
    full = run_cli(fit("spotify_tracks", *common, "--trainer.max_epochs", "6"))
    first = run_cli(fit("spotify_tracks", *common, "--trainer.max_epochs", "3"))
    last = Path(first.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    resumed = run_cli(fit("spotify_tracks", *common, "--trainer.max_epochs", "6", "--ckpt_path", str(last)))
    assert resumed.trainer.current_epoch == full.trainer.current_epoch == 6
    assert resumed.trainer.callback_metrics["test/acc"] == full.trainer.callback_metrics["test/acc"]
    assert resumed.trainer.logger.version == first.trainer.logger.version  # the run goes on in its own folders
    a = torch.load(Path(full.trainer.checkpoint_callback.dirpath) / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key


@pytest.mark.slow
def test_compiled_backbone_trains_and_keeps_checkpoint_keys(data_env) -> None:
    cli = run_cli(fit("music_genre", "--model.compile", "true", "--trainer.max_epochs", "2"))
    assert float(cli.trainer.callback_metrics["test/acc"]) > 0.5
    state = torch.load(cli.trainer.checkpoint_callback.best_model_path, weights_only=True)["state_dict"]
    assert set(state) == set(GenreClassifier(cli.model.hparams.num_features, 4).state_dict())
