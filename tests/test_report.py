"""The test report (files + TensorBoard), permutation importance, and the baselines script in quick mode."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genre_torch.cli import main, run_cli
from genre_torch.tools import figures
from tests.trained import CONFIGS, trained

ROOT = Path(__file__).resolve().parents[1]


def check_report(run_dir: Path, classes: list[str], meta_columns: list[str]) -> dict:
    """Every report file is there and consistent; the figure and the projector data reached TensorBoard."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    per_genre = pd.read_csv(run_dir / "per_genre.csv")
    assert sorted(per_genre["genre"]) == classes and per_genre["support"].sum() == metrics["rows"]
    assert list(per_genre.columns) == ["genre", "precision", "recall", "f1", "support"]
    cm = pd.read_csv(run_dir / "confusion_matrix.csv", index_col=0)
    assert list(cm.columns) == classes and cm.to_numpy().sum() == metrics["rows"]
    assert np.trace(cm.to_numpy()) / metrics["rows"] == pytest.approx(metrics["accuracy"])
    assert (run_dir / "confusion_matrix.png").stat().st_size > 10_000
    assert metrics["accuracy"] <= metrics["top3_accuracy"] <= 1.0
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0}).Reload()
    assert "z_test/confusion_matrix" in events.Tags()["images"]
    assert "z_test/top3_acc" in events.Tags()["scalars"]
    (metadata,) = run_dir.glob("*/test_songs/metadata.tsv")
    header = metadata.read_text().splitlines()[0].split("\t")
    assert header == ["genre", "predicted", *meta_columns]
    assert "test_songs" in (run_dir / "projector_config.pbtxt").read_text()
    return metrics


def test_fit_writes_the_report() -> None:
    run = trained("music_genre")
    metrics = check_report(run.run_dir, run.datamodule.preprocessor.classes, ["artist_name", "track_name"])
    assert metrics["dataset"] == "music_genre" and metrics["rows"] == len(run.datamodule.splits["test"])


def test_test_subcommand_writes_the_report(tmp_path) -> None:
    run = trained("spotify_tracks")
    cli = run_cli(
        ["test", "--config", str(CONFIGS / "spotify_tracks.yaml"), "--data.path", str(run.data)]
        + ["--ckpt_path", str(run.ckpt), "--runs_dir", str(tmp_path / "runs")]
    )
    run_dir = Path(cli.trainer.logger.log_dir)
    meta = ["artists", "album_name", "track_name"]
    metrics = check_report(run_dir, cli.datamodule.preprocessor.classes, meta)
    assert metrics["accuracy"] == pytest.approx(float(cli.trainer.callback_metrics["test/acc"]), abs=1e-6)
    assert metrics["accuracy"] == pytest.approx(run.test_acc) and metrics["checkpoint"] == str(run.ckpt)


def test_confusion_figure_is_legible_for_114_genres() -> None:
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 5, (114, 114)) + np.diag(rng.integers(20, 60, 114))
    order = figures.confusion_order(cm)
    assert sorted(order) == list(range(114))
    fig = figures.confusion(cm, [f"genre{i}" for i in range(114)])
    width, height = fig.get_size_inches()
    assert height >= 25 and width >= height  # ~0.22 inch per genre: every name readable at 100 dpi


def importance(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    main(["importance", *args])
    return capsys.readouterr().out


def test_importance_writes_csv_png_and_tensorboard(capsys, tmp_path) -> None:
    run = trained("music_genre")
    args = ["--ckpt_path", str(run.ckpt), "--data.path", str(run.data), "--repeats", "2"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = importance(capsys, *args, "--runs_dir", str(tmp_path))
    assert not [w for w in caught if "not writable" in str(w.message)]  # torch's note with a C++ source path
    folder = tmp_path / "music_genre" / "importance" / "version_0"
    table = pd.read_csv(folder / "importance.csv")
    spec = run.datamodule.spec
    assert sorted(table["column"]) == sorted([*spec.numeric, *spec.categorical])  # one row per original column
    assert table["importance_mean"].is_monotonic_decreasing and table["importance_mean"].max() > 0
    assert (folder / "importance.png").stat().st_size > 5_000
    assert f"test accuracy {run.test_acc:.4f}" in out  # same test rows as the report
    events = EventAccumulator(str(folder), size_guidance={"images": 0}).Reload()
    assert "z_importance/permutation" in events.Tags()["images"]
    assert events.Tags()["scalars"] == []  # no chart group of single dots before the curves


def test_importance_bad_input(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for args, message in [
        (["--ckpt_path", "nope.ckpt"], "checkpoint nope.ckpt does not exist"),
        (["--ckpt_path", str(trained("music_genre").ckpt), "--data.path", "no.csv"], "no.csv does not exist"),
        ([], "required: --ckpt_path"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["importance", *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1 and message in err[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_baselines_quick(data_env, capsys) -> None:
    spec = importlib.util.spec_from_file_location("baselines", ROOT / "scripts" / "baselines.py")
    baselines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baselines)
    baselines.main(["--quick", "--datasets", "music_genre"])
    out = capsys.readouterr().out
    table = out[out.index("### music_genre") :].splitlines()
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| model")]
    names = [r.split("|")[1].strip().split(" ")[0] for r in rows]
    assert names == ["LogisticRegression", "RandomForest", "HistGradientBoosting", "k-means", "MLP"]
    accuracies = [float(r.split("|")[2]) for r in rows]
    assert all(0 <= a <= 100 for a in accuracies) and max(accuracies) > 50  # 4 separable genres: chance is 25


def test_the_importance_chart_is_legible_at_card_size() -> None:
    from genre_torch.tools.figures import LABEL_PT, bars

    names = [f"column_{i}" for i in range(30)] + ["a_very_long_column_name_of_a_wide_dataset"]
    fig = bars(names, list(range(31)), [0.1] * 31, "permutation importance on the test split (music_genre)", "drop")
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 20 and labels[-1].startswith("a_very_long_colum") and len(labels[-1]) <= 24  # top 20
    assert labels[0] == "column_11" and LABEL_PT >= 12  # the smallest shown value at the bottom
    assert all(t.get_fontsize() >= LABEL_PT for t in ax.get_yticklabels() + ax.get_xticklabels())
    assert fig.get_figwidth() <= 6.5 and "11 more in the CSV" in ax.get_title()
