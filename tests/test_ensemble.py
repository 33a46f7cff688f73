"""Packed ensembles (--model.ensemble_size K): independent members, mean probability, every backbone, round trip."""

from __future__ import annotations

import functools
import inspect
import io
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from genre_torch import load_predictor
from genre_torch.cli import main, run_cli
from genre_torch.core import models
from genre_torch.core.models.ensemble import PackedEnsemble
from genre_torch.core.training.module import GenreClassifier
from genre_torch.tools.export import raw_matrix

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "music_genre.yaml")
FIT = ["fit", "--config", CONFIG, "--trainer.enable_progress_bar", "false", "--data.batch_size", "64"]
TINY = {  # small settings per registered backbone; a backbone not listed is built with its defaults
    "MLP": {"hidden_dims": [16]},
    "ResMLP": {"width": 16, "depth": 1},
    "PLRMLP": {"hidden_dims": [16], "n_frequencies": 4, "d_embedding": 4},
    "RealMLP": {"hidden_dims": [16], "n_frequencies": 4},
    "TabM": {"k": 2, "hidden_dims": [16]},
    "FTTransformer": {"d_token": 8, "n_layers": 1, "n_heads": 2},
}


def members(model: GenreClassifier) -> list[torch.nn.Module]:
    """The ensemble's members rebuilt one by one as plain backbones, each with its slice of the stacked weights."""
    hp = model.hparams
    cls = models.get(hp.backbone["class_path"])
    extra = {"n_numeric": hp.num_numeric} if "n_numeric" in inspect.signature(cls).parameters else {}
    state = model.backbone.stacked.state_dict()
    nets = []
    for i in range(hp.ensemble_size):
        net = cls(hp.num_features, hp.num_classes, **(hp.backbone.get("init_args") or {}), **extra)
        net.load_state_dict({k: v[i] for k, v in state.items()})
        nets.append(net.eval())
    return nets


def member_probabilities(nets: list[torch.nn.Module], x: torch.Tensor) -> torch.Tensor:
    """(members, batch, classes): each member's own probabilities (an inner ensemble's mean over its members)."""
    return torch.stack([net(x).softmax(-1) for net in nets])


def flat(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


@pytest.mark.parametrize("name", models.names())
def test_every_backbone_trains_as_a_packed_ensemble(name: str) -> None:
    torch.manual_seed(0)
    settings = TINY.get(name, {})
    backbone = {"class_path": name, "init_args": settings}
    model = GenreClassifier(7, 3, num_numeric=3, backbone=backbone, ensemble_size=3)
    assert isinstance(model.backbone, PackedEnsemble)
    x, y = torch.randn(64, 7), torch.randint(0, 3, (64,))
    before = [flat(net) for net in members(model)]
    assert all(not torch.equal(before[0], b) for b in before[1:])  # each member its own initialisation
    opt = model.configure_optimizers()
    model.train()
    for _ in range(5):
        loss, _ = model.training_loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    nets = members(model)
    after = [flat(net) for net in nets]
    assert all(not torch.equal(after[0], a) for a in after[1:]) and not torch.equal(before[0], after[0])
    model.eval()
    with torch.no_grad():
        expected = member_probabilities(nets, x).mean(0)  # members computed one by one
        assert torch.allclose(model(x).softmax(-1), expected, atol=1e-5)
        # the training loss is the mean of the members' own losses (an inner ensemble's members each count)
        loss, _ = model.training_loss(x, y)
        own = [torch.nn.functional.cross_entropy(m, y) for m in model.backbone.forward_members(x).unbind(1)]
        assert float(loss) == pytest.approx(float(torch.stack(own).mean()), rel=1e-5)
        if hasattr(nets[0], "embed"):  # the projector's representation: the members' side by side
            assert torch.allclose(model.backbone.embed(x), torch.cat([net.embed(x) for net in nets], 1), atol=1e-5)
        else:
            assert not hasattr(model.backbone, "embed")
        unpacked = model.backbone.unpack()  # what export traces: the same function as plain modules in a loop
        assert torch.allclose(unpacked(x), model(x), atol=1e-5)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(unpacked, (x,), buffer, input_names=["x"], opset_version=17, dynamo=False)
    onnx = ort.InferenceSession(buffer.getvalue()).run(None, {"x": x.numpy()})[0]
    assert np.abs(onnx - model(x).detach().numpy()).max() <= 1e-5


def test_size_one_is_the_backbone_alone_with_the_same_numbers() -> None:
    x, y = torch.randn(32, 7), torch.randint(0, 3, (32,))
    results = []
    for extra in [{}, {"ensemble_size": 1}]:
        torch.manual_seed(0)
        model = GenreClassifier(7, 3, **extra)
        opt = model.configure_optimizers()
        for _ in range(3):
            loss, _ = model.training_loss(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        results.append((model.state_dict(), model(x)))
    (plain, out), (one, out_one) = results
    assert list(plain) == list(one) and all(torch.equal(plain[k], one[k]) for k in plain)
    assert torch.equal(out, out_one) and type(GenreClassifier(7, 3, ensemble_size=1).backbone).__name__ == "MLP"


def test_size_one_from_the_command_line_trains_exactly_as_before(data_env: Path) -> None:
    runs = []
    for extra in [[], ["--model.ensemble_size", "1"]]:
        dirs = ["--runs_dir", f"runs{len(extra)}", "--checkpoints_dir", f"ckpt{len(extra)}"]
        cli = run_cli([*FIT, "--trainer.max_epochs", "2", *dirs, *extra])
        runs.append((cli.trainer.callback_metrics, torch.load(cli.trainer.checkpoint_callback.best_model_path)))
    (metrics, ckpt), (metrics_one, ckpt_one) = runs
    assert {k: float(v) for k, v in metrics.items()} == {k: float(v) for k, v in metrics_one.items()}
    assert list(ckpt["state_dict"]) == list(ckpt_one["state_dict"])
    assert all(torch.equal(v, ckpt_one["state_dict"][k]) for k, v in ckpt["state_dict"].items())


def test_the_backbones_parameter_groups_apply_to_every_member(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))
    backbone = {"class_path": "head_lr_mlp.HeadLRMLP", "init_args": {"width": 8}}
    optimizer = functools.partial(torch.optim.AdamW, lr=0.001, weight_decay=0.01)
    model = GenreClassifier(7, 3, backbone=backbone, optimizer=optimizer, ensemble_size=4)
    groups = model.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.01, 0.001])
    assert [g["weight_decay"] for g in groups] == pytest.approx([0.01, 0.01, 0.0])
    assert [p.shape[0] for g in groups for p in g["params"]] == [4] * 4  # the stacked parameters
    realmlp = GenreClassifier(7, 3, num_numeric=3, backbone={"class_path": "RealMLP"}, ensemble_size=2)
    betas = {g["betas"] for g in realmlp.configure_optimizers().param_groups}
    assert betas == {(0.9, 0.95)} and len(realmlp.configure_optimizers().param_groups) == len(
        models.optimizer_groups(models.build("RealMLP", 7, 3, n_numeric=3), 1e-3, 0.0)
    )


def test_checkpoint_test_predict_export_round_trip(data_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = run_cli([*FIT, "--trainer.max_epochs", "2", "--model.ensemble_size", "3", "--data.batches_per_step", "2"])
    best = cli.trainer.checkpoint_callback.best_model_path
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["hyper_parameters"]["ensemble_size"] == 3
    weight = ckpt["state_dict"]["backbone.stacked.head.weight"]
    assert weight.shape[0] == 3 and not torch.equal(weight[0], weight[1])  # still different after training
    tested = run_cli(["test", "--ckpt_path", best])
    assert tested.trainer.callback_metrics["test/acc"] == pytest.approx(cli.trainer.callback_metrics["test/acc"])

    rows = data_env / "music_genre.csv"
    main(["predict", "--ckpt_path", best, "--input", str(rows), "--output", "p.csv"])
    predicted = pd.read_csv("p.csv")
    predictor = load_predictor(best)
    frame = pd.read_csv(rows)
    proba = predictor.predict_proba(frame)
    # the probabilities are the mean of the members' probabilities, members computed one by one
    nets = members(tested.model)
    clean = predictor.spec.clean(frame, training=False)
    x = torch.as_tensor(predictor.preprocessor.transform(clean), dtype=torch.float32)
    ok = proba.notna().all(axis=1).to_numpy()
    with torch.no_grad():
        expected = member_probabilities(nets, x).mean(0).numpy()
    assert np.abs(proba.to_numpy()[ok] - expected[ok]).max() <= 1e-5
    top = next(c for c in predicted if c.endswith("probability"))  # `genre-torch predict` writes the same numbers
    assert len(predicted) == len(frame) and np.allclose(predicted[top][ok], proba.max(axis=1)[ok], atol=1e-4)

    main(["export", "--ckpt_path", best, "--format", "onnx", "--output", "m.onnx"])
    contract = json.loads(Path("m.json").read_text())
    onnx = ort.InferenceSession("m.onnx").run(["probabilities"], {"features": raw_matrix(clean, contract)})[0]
    assert np.abs(onnx[ok] - proba.to_numpy()[ok]).max() <= 1e-5
    main(["export", "--ckpt_path", best, "--format", "torchscript", "--output", "m.pt"])
    with torch.no_grad():
        scripted = torch.jit.load("m.pt")(torch.from_numpy(raw_matrix(clean, contract))).numpy()
    assert np.abs(scripted[ok] - proba.to_numpy()[ok]).max() <= 1e-5
    capsys.readouterr()


@pytest.mark.parametrize("size", ["0", "-1", "two"])
def test_a_bad_size_is_one_line(data_env: Path, capsys: pytest.CaptureFixture[str], size: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*FIT, "--trainer.max_epochs", "1", "--model.ensemble_size", size])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and err.startswith("genre-torch: error: ") and "ensemble_size" in err
    assert "unknown option" not in err  # a known setting with a bad value
    assert not Path("checkpoints").exists()


@pytest.mark.slow
def test_ddp_two_cpu_processes(data_env: Path, warm: dict[str, Path]) -> None:
    ddp = [warm["python"], "-m", "genre_torch.cli", *FIT, "--config", str(ROOT / "configs" / "presets" / "ddp.yaml")]
    ddp += ["--trainer.max_epochs", "1", "--num_threads", "1", "--trainer.accelerator", "cpu"]
    ddp += ["--model.ensemble_size", "2", "--model.backbone", "RealMLP", "--model.backbone.hidden_dims", "[16]"]
    done = subprocess.run(ddp, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy" in done.stdout


def test_dropout_follows_the_train_mode_lightning_restores() -> None:
    """Lightning puts a module back in train mode after validation by setting each registered module's `training`
    flag, not through train(): the members' dropout must still be on in the next epoch."""
    nets = [models.get("MLP")(4, 3, hidden_dims=[64], dropout=0.5) for _ in range(2)]
    ensemble = PackedEnsemble(nets)
    x = torch.randn(32, 4)
    ensemble.eval()  # validation
    for module in ensemble.modules():  # as Lightning's loops restore the mode they found
        module.training = True
    torch.manual_seed(0)
    first = ensemble.forward_members(x)
    assert not torch.equal(first, ensemble.forward_members(x))  # dropout draws differ: it is on
    ensemble.eval()
    assert torch.equal(ensemble.forward_members(x), ensemble.forward_members(x))
