"""Short fits on the real datasets (skipped only when the files are absent; CI has them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from genre_torch.cli import main
from tests.conftest import real_file

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "epochs", "bar"), [("music_genre", 4, 0.50), ("spotify_tracks", 3, 0.20)])
def test_short_fit_on_real_data(dataset: str, epochs: int, bar: float, capsys, tmp_path, monkeypatch) -> None:
    path = real_file(dataset)
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / f"{dataset}.yaml"),
            "--data.path",
            str(path),
            "--trainer.max_epochs",
            str(epochs),
            "--data.batch_size",
            "1024",
        ]
    )
    out = capsys.readouterr().out
    acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert acc >= bar, out
