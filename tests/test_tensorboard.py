"""A real TensorBoard server over a short run serves its scalars, hyperparameters, confusion matrix and notes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.trained import trained

TENSORBOARD = Path(sys.executable).with_name("tensorboard")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, body: dict | None = None) -> bytes:
    """GET (or POST a JSON body to) a local URL."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (127.0.0.1 only)
        return response.read()


@pytest.mark.slow
def test_tensorboard_serves_scalars_hparams_confusion_matrix_and_notes() -> None:
    run = trained("music_genre")
    port = free_port()
    logdir = run.run_dir.parent  # runs/<dataset>: the folder `genre-torch fit` tells the user to open
    server = subprocess.Popen(
        [str(TENSORBOARD), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/data"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                runs = json.loads(get(f"{base}/runs"))
                if runs:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not answer in 90 s"
            time.sleep(0.5)
        name = run.run_dir.name
        tags = json.loads(get(f"{base}/plugin/scalars/tags"))
        scalars = tags[name]
        assert {"train/loss", "train/acc", "val/loss", "val/acc", "z_test/acc"} <= set(scalars)
        assert "epoch" not in scalars  # no chart group of single dots above the curves
        # the Time Series dashboard sorts its chart groups (a tag's text before the first "/") by name and opens the
        # first two: no `hp`, `test` (or other) group of single dots before train and val, in any run and plugin
        images = json.loads(get(f"{base}/plugin/images/tags"))
        every = [tag for plugin in (tags, images) for run_tags in plugin.values() for tag in run_tags]
        groups = sorted({tag.split("/")[0] for tag in every})
        assert groups == ["train", "val", "z_fit", "z_test"], groups
        assert set(tags[f"{name}/final"]) >= {"val/acc", "z_test/acc", "z_fit/epochs"}  # the HParams row's values
        experiment = json.loads(get(f"{base}/plugin/hparams/experiment", {"experimentName": ""}))
        hparams = {h["name"] for h in experiment["hparamInfos"]}
        assert {"backbone", "backbone/hidden_dims", "criterion", "optimizer", "optimizer/lr", "seed"} <= hparams
        assert {"data/dataset", "data/features", "data/split", "data/batch_size"} <= hparams
        assert not [h for h in hparams if "_instantiator" in h or "_class_path" in h]
        # the table ticks the first 5 of the settings marked `differs`: what tells runs apart, not constants
        shown = sorted(h["name"] for h in experiment["hparamInfos"] if h.get("differs"))
        assert shown == ["backbone", "backbone/hidden_dims", "criterion", "optimizer/lr", "seed"], shown
        first = [m.get("displayName") for m in experiment["metricInfos"]][:3]
        assert first == ["val/acc", "test/acc", "test/macro_f1"], first
        metrics = {(m["name"].get("group", ""), m["name"]["tag"]): m["displayName"] for m in experiment["metricInfos"]}
        assert {("final", "val/acc"), ("final", "z_test/acc"), ("final", "z_fit/epochs")} <= set(metrics)
        assert metrics[("final", "z_test/acc")] == "test/acc"  # the HParams column: the metric's own name
        sessions = json.loads(get(f"{base}/plugin/hparams/session_groups", {"experimentName": "", "allowedStatuses": [
            "STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"], "colParams": [], "startIndex": 0,
            "sliceSize": 10}))  # fmt: skip
        (group,) = [g for g in sessions["sessionGroups"] if g["name"] == name]
        values = {(v["name"].get("group", ""), v["name"]["tag"]): v["value"] for v in group["metricValues"]}
        assert values[("final", "z_test/acc")] == pytest.approx(run.test_acc, abs=1e-4)  # the row shows the test
        query = urllib.parse.urlencode({"run": name, "tag": "z_test/confusion_matrix"})
        (image,) = json.loads(get(f"{base}/plugin/images/images?{query}"))
        assert get(f"{base}/plugin/images/individualImage?{image['query']}")[:4] == b"\x89PNG"
        assert "z_test/most_confused/text_summary" in json.loads(get(f"{base}/plugin/text/tags"))[name]
    finally:
        server.terminate()
        server.wait(timeout=30)
