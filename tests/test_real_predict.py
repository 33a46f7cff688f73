"""Real spotify_tracks (114 genres): the report, predict reproducing the test accuracy, export parity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from genre_torch import load_predictor
from genre_torch.cli import main, run_cli
from genre_torch.tools.export import raw_matrix
from tests.conftest import real_file

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "spotify_tracks.yaml")


@pytest.mark.real_data
@pytest.mark.slow
def test_report_predict_and_export_on_real_spotify(capsys, tmp_path, monkeypatch) -> None:
    path = real_file("spotify_tracks")
    monkeypatch.chdir(tmp_path)
    cli = run_cli(["fit", "--config", CONFIG, "--data.path", str(path), "--trainer.max_epochs", "1"])
    run_dir, dm = Path(cli.trainer.logger.log_dir), cli.datamodule
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_classes"] == 114 and (run_dir / "confusion_matrix.png").is_file()
    assert metrics["top3_accuracy"] > metrics["accuracy"] > 0.1

    rows = dm.frame.iloc[dm.splits["test"]]
    rows.to_csv("test_rows.csv", index=False)
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    capsys.readouterr()
    main(["predict", "--ckpt_path", ckpt, "--input", "test_rows.csv", "--output", "pred.csv"])
    acc = float(re.search(r"^accuracy: ([0-9.]+)", capsys.readouterr().out, re.M).group(1))
    assert acc == pytest.approx(metrics["accuracy"], abs=5e-5)

    predictor = load_predictor(ckpt)
    sample = predictor.spec.clean(rows.iloc[:2000], training=False)
    reference = predictor.predict_proba(rows.iloc[:2000]).to_numpy()
    main(["export", "--ckpt_path", ckpt, "--format", "onnx", "--output", "m.onnx"])
    contract = json.loads(Path("m.json").read_text())
    probs = ort.InferenceSession("m.onnx").run(None, {"features": raw_matrix(sample, contract)})[0]
    assert np.abs(probs - reference).max() <= 1e-5
