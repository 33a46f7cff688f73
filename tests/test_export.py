"""`genre-torch export`: ONNX / TorchScript parity with the PyTorch module, genre names attached, bad input."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from genre_torch import load_predictor
from genre_torch.cli import main
from genre_torch.core.compat import data_state
from genre_torch.core.errors import GenreTorchError
from genre_torch.tools.export import ExportedModel, raw_matrix
from tests.trained import trained


def export(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    main(["export", *args])
    return capsys.readouterr().out


def rows_with_gaps(dataset: str) -> pd.DataFrame:
    """The test rows with missing numbers, a missing and an unseen category mixed in."""
    rows = pd.read_csv(trained(dataset).test_rows)
    rows.loc[rows.index[::3], "tempo"] = np.nan
    rows.loc[rows.index[1::4], "loudness"] = np.nan
    rows["key"] = rows["key"].astype(object)
    rows.loc[rows.index[2], "key"] = np.nan
    rows.loc[rows.index[5], "key"] = "unseen-key"
    return rows


@pytest.mark.parametrize("dataset", ["music_genre", "spotify_tracks"])
def test_parity_onnx_and_torchscript(capsys, tmp_path, dataset: str) -> None:
    run = trained(dataset)
    predictor = load_predictor(run.ckpt)
    clean = predictor.spec.clean(rows_with_gaps(dataset), training=False)
    reference = predictor.predict_proba(rows_with_gaps(dataset)).to_numpy()  # the backbone on the encoding

    out = export(capsys, "--ckpt_path", str(run.ckpt), "--format", "onnx", "--output", str(tmp_path / "m.onnx"))
    assert "m.json" in out
    contract = json.loads((tmp_path / "m.json").read_text())
    assert contract["classes"] == predictor.classes
    assert [c["name"] for c in contract["columns"]] == [*predictor.spec.numeric, *predictor.spec.categorical]
    x = raw_matrix(clean, contract)
    assert np.isnan(x).any() and (x == -1).any()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    onnx_probs = session.run(["probabilities"], {"features": x})[0]
    assert np.abs(onnx_probs - reference).max() <= 1e-5
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == predictor.classes and json.loads(meta["genre_torch"]) == contract

    export(capsys, "--ckpt_path", str(run.ckpt), "--format", "torchscript", "--output", str(tmp_path / "m.pt"))
    files = {"genre_torch.json": ""}
    scripted = torch.jit.load(str(tmp_path / "m.pt"), _extra_files=files)
    with torch.no_grad():
        ts_probs = scripted(torch.from_numpy(x)).numpy()
    assert np.abs(ts_probs - reference).max() <= 1e-5
    assert json.loads(files["genre_torch.json"])["classes"] == predictor.classes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx", "m.pt"]  # no temporary files left


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run export expecting a one-line error and exit code 2; return the line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("genre-torch: error: ")
    return err[0]


def test_bad_input(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt = str(trained("music_genre").ckpt)
    assert "invalid choice: 'tflite' (choose from 'onnx', 'torchscript')" in fails(
        capsys, "--ckpt_path", ckpt, "--format", "tflite", "--output", "m.tflite"
    )
    assert "checkpoint nope.ckpt does not exist" in fails(
        capsys, "--ckpt_path", "nope.ckpt", "--format", "onnx", "--output", "m.onnx"
    )
    assert "sidecar" in fails(capsys, "--ckpt_path", ckpt, "--format", "onnx", "--output", "m.json")
    assert "does not exist" in fails(capsys, "--ckpt_path", ckpt, "--format", "onnx", "--output", "no/m.onnx")
    assert "required: --format" in fails(capsys, "--ckpt_path", ckpt, "--output", "m.onnx")
    assert not list(tmp_path.iterdir())


def test_text_metadata_features_are_refused() -> None:
    state = data_state(torch.load(trained("music_genre").ckpt, weights_only=True))["preprocessor"]
    with pytest.raises(GenreTorchError, match="cannot carry this checkpoint's meta features"):
        ExportedModel(torch.nn.Identity(), {**state, "meta": {"artist_name": {"keys": ["a"]}}})
