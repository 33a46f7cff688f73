"""A dataset the package knows nothing about, declared in a YAML spec: fit, data check, predict, export, importance."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from genre_torch.cli import main, run_cli
from genre_torch.core.compat import data_state
from genre_torch.core.data.datasets import spec_from_checkpoint_state

FEATURES = tuple(f"f{i}" for i in range(20))
SPEC = """\
name: synth20
target: label
numeric: auto       # f0 .. f19; not the row index, the id or the text column
id_columns: [song_id]
ignore: [comment]
"""
FAST = [
    "--trainer.max_epochs",
    "6",
    "--trainer.enable_progress_bar",
    "false",
    "--data.batch_size",
    "64",
    "--optimizer.lr",
    "0.01",
]


def make_synth(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """20 numeric features, 3 classes that shift the first five, an id, a text column; an unnamed row index."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 3
    x = rng.normal(size=(n, 20))
    x[:, :5] += label[:, None] * 1.5
    df = pd.DataFrame(x, columns=list(FEATURES))
    df.insert(0, "song_id", [f"s{i:04d}" for i in range(n)])
    df["comment"] = rng.choice(["nice", "loud", "meh"], n)
    df["label"] = np.array(["x", "y", "z"])[label]
    return df


@dataclass(frozen=True)
class Run:
    folder: Path
    ckpt: Path
    test_acc: float
    numeric: tuple[str, ...]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("synth20")
    (folder / "spec.yaml").write_text(SPEC)
    make_synth().to_csv(folder / "x.csv", index=True)  # index=True: an "Unnamed: 0" column
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        cli = run_cli(["fit", "--data.dataset", "spec.yaml", "--data.path", "x.csv", *FAST])
    metrics = cli.trainer.callback_metrics
    ckpt = folder / cli.trainer.checkpoint_callback.best_model_path
    return Run(folder, ckpt, float(metrics["test/acc"]), cli.datamodule.spec.numeric)


@pytest.fixture
def in_run(run: Run, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.chdir(run.folder)
    return run


def test_fit_resolves_numeric_auto_and_stores_the_spec(run: Run) -> None:
    assert run.numeric == FEATURES and run.test_acc > 0.6  # chance: 1/3
    assert run.ckpt.parent.parent.name == "synth20"  # checkpoints/synth20/version_0
    state = data_state(torch.load(run.ckpt, weights_only=True))
    spec = spec_from_checkpoint_state(state)
    assert spec.name == "synth20" and spec.numeric == FEATURES and spec.id_columns == ("song_id",)


def test_data_check(in_run: Run, capsys) -> None:
    main(["data", "check", "x.csv", "--dataset", "spec.yaml"])
    out = capsys.readouterr().out
    assert "dataset: synth20" in out and "(the spec has no sha256)" in out
    table = {line.split()[0]: line.split()[1] for line in out.splitlines() if re.match(r"f\d+ ", line)}
    assert set(table) == set(FEATURES) and set(table.values()) == {"numeric"}
    assert "Unnamed" not in out and "genres (label): 3" in out


def test_predict(in_run: Run, capsys) -> None:
    make_synth(90, seed=1).to_csv("new.csv", index=True)
    main(["predict", "--ckpt_path", str(in_run.ckpt), "--input", "new.csv", "--output", "pred.csv"])
    accuracy = float(re.search(r"accuracy: ([0-9.]+)", capsys.readouterr().out).group(1))
    pred = pd.read_csv("pred.csv")
    assert len(pred) == 90 and list(pred.columns[:3]) == ["song_id", "label", "predicted_genre"]
    assert pred["error"].isna().all() and accuracy > 0.6


def test_export(in_run: Run, capsys) -> None:
    ort = pytest.importorskip("onnxruntime")
    from genre_torch import load_predictor
    from genre_torch.core.data.datasets import DatasetSpec
    from genre_torch.tools.export import raw_matrix

    main(["export", "--ckpt_path", str(in_run.ckpt), "--format", "onnx", "--output", "synth.onnx"])
    contract = json.loads(Path("synth.json").read_text())
    assert contract["dataset"] == "synth20" and [c["name"] for c in contract["columns"]] == list(FEATURES)
    rows = make_synth(30, seed=2)
    clean = DatasetSpec.from_dict(contract["spec"]).clean(rows, training=False)  # the sidecar's own spec
    session = ort.InferenceSession("synth.onnx")
    probs = session.run(None, {"features": raw_matrix(clean, contract)})[0]
    predictor = load_predictor(in_run.ckpt)
    assert np.allclose(probs, predictor.predict_proba(rows).to_numpy(), atol=1e-5)


def test_importance(in_run: Run, capsys) -> None:
    main(["importance", "--ckpt_path", str(in_run.ckpt), "--repeats", "1"])
    out = capsys.readouterr().out
    ranked = [line.split()[0] for line in out.splitlines() if re.match(r"\s*f\d+\s", line)]
    assert sorted(ranked) == sorted(FEATURES) and set(ranked[:3]) <= set(FEATURES[:5])  # the informative ones lead


def test_test_and_validate_take_the_dataset_from_the_checkpoint(in_run: Run) -> None:
    Path("spec.yaml").rename("moved.yaml")  # the spec's content is in the checkpoint
    try:
        tested = run_cli(["test", "--ckpt_path", str(in_run.ckpt)])
        assert tested.datamodule.spec.name == "synth20"
        assert float(tested.trainer.callback_metrics["test/acc"]) == pytest.approx(in_run.test_acc)
        checked = run_cli(["validate", "--ckpt_path", str(in_run.ckpt), "--data.eval_batch_size", "7"])
        assert checked.datamodule.eval_batch_size == 7  # what the command line gives wins
    finally:
        Path("moved.yaml").rename("spec.yaml")


def test_the_artist_split_without_an_artist_column_is_one_line(in_run: Run, capsys) -> None:
    from tests.fault_tools import one_line_error

    err = one_line_error(capsys, "fit", "--data.dataset", "spec.yaml", "--data.path", "x.csv", "--data.split", "artist")
    assert "--data.split artist needs an artist column" in err
