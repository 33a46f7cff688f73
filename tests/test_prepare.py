"""`genre-torch prepare` (pandas engine), training from a prepared Parquet folder, and streamed batches."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from genre_torch.cli import main, run_cli
from genre_torch.core.data import GenreDataModule
from genre_torch.core.data.prepared import STATE_FILE, PreparedData, compare, split_files
from genre_torch.core.data.streaming import ParquetBatches
from genre_torch.core.errors import GenreTorchError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = ["--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false", "--data.batch_size", "64"]


@pytest.fixture
def prepared(data_env, tmp_path) -> Path:
    """The synthetic spotify_tracks prepared with the pandas engine."""
    main(["prepare", "--dataset", "spotify_tracks", "--output", str(tmp_path / "prep")])
    return tmp_path / "prep"


def test_prepared_folder_holds_exactly_the_datamodule_tensors(prepared, capsys) -> None:
    csv = GenreDataModule("spotify_tracks").load()
    dm = GenreDataModule("spotify_tracks", path=str(prepared)).load()
    assert dm.frame is None and dm.num_features == csv.num_features and dm.num_classes == csv.num_classes
    for split in ("train", "val", "test"):
        assert np.array_equal(dm.splits[split], csv.splits[split])
        assert torch.equal(dm.tensors[split][0], csv.tensors[split][0])
        assert torch.equal(dm.tensors[split][1], csv.tensors[split][1])
    a, b = dm.preprocessor.state_dict(), csv.preprocessor.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in ("median", "center", "scale")) and a["vocab"] == b["vocab"]
    assert compare(prepared, prepared)["max_abs_diff"] == 0.0
    stored = pq.read_table(split_files(prepared, "train")[0], columns=["row_id"]).column("row_id").to_numpy()
    assert sorted(stored) == list(dm.splits["train"]) and (np.diff(stored) < 0).any()  # random order on disk


def test_a_folder_prepared_with_the_old_state_keys_still_loads(prepared, tmp_path) -> None:
    """Before they were named center / scale, preprocessing.json kept the (x - center) / scale statistics as
    mean / std."""
    old = tmp_path / "old"
    shutil.copytree(prepared, old)
    info = json.loads((old / STATE_FILE).read_text())
    info["preprocessor"] = {{"center": "mean", "scale": "std"}.get(k, k): v for k, v in info["preprocessor"].items()}
    assert {"mean", "std"} <= set(info["preprocessor"])
    (old / STATE_FILE).write_text(json.dumps(info))
    new, back = PreparedData(prepared).preprocessor, PreparedData(old).preprocessor
    assert torch.equal(back.center, new.center) and torch.equal(back.scale, new.scale)
    dm = GenreDataModule("spotify_tracks", path=str(old)).load()
    assert torch.equal(dm.preprocessor.scale, new.scale)
    parity = compare(old, prepared)
    assert parity["max_abs_diff"] == 0.0 and parity["max_rel_state_diff"] == 0.0


def test_prepare_refuses_to_overwrite_and_leaves_nothing_half_written(prepared, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["prepare", "--dataset", "spotify_tracks", "--output", str(prepared)])
    assert "--overwrite" in capsys.readouterr().err
    (prepared.parent / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit):
        main(["prepare", "--dataset", "music_genre", "--output", str(prepared.parent / "x"), "--data.path", "bad.csv"])
    assert "lacks required column" in capsys.readouterr().err
    assert sorted(p.name for p in prepared.parent.iterdir()) == ["bad.csv", "prep"]  # no temporary folder left


def test_prepared_folder_must_match_the_options(prepared) -> None:
    with pytest.raises(GenreTorchError, match="holds spotify_tracks"):
        GenreDataModule("music_genre", path=str(prepared)).load()
    with pytest.raises(GenreTorchError, match="prepared with split"):
        GenreDataModule("spotify_tracks", path=str(prepared), split_seed=1).load()


@pytest.mark.slow
def test_training_from_parquet_matches_training_from_csv(prepared, capsys) -> None:
    config = ["fit", "--config", str(CONFIGS / "spotify_tracks.yaml"), *FAST]
    from_csv = run_cli(config)
    from_parquet = run_cli([*config, "--data.path", str(prepared)])
    acc = [float(x) for x in re.findall(r"test accuracy: ([0-9.]+)", capsys.readouterr().out)]
    assert len(acc) == 2 and acc[0] == acc[1] > 0.5
    for p, q in zip(from_csv.model.parameters(), from_parquet.model.parameters(), strict=True):
        assert torch.equal(p, q)
    best = from_parquet.trainer.checkpoint_callback.best_model_path  # its checkpoint scores raw CSV rows
    raw_csv = Path(os.environ["GENRE_TORCH_DATA_DIR"]) / "spotify_tracks.csv.gz"
    main(["predict", "--ckpt_path", best, "--input", str(raw_csv), "--output", "scores.csv"])
    assert len(pd.read_csv("scores.csv")) == len(pd.read_csv(raw_csv))


def write_row_groups(tmp_path: Path, rows: int = 230, group: int = 40) -> tuple[list[Path], np.ndarray]:
    """Two Parquet files of small row groups; features[:, 0] is the row number."""
    from genre_torch.tools.prepare import features_table

    x = np.stack([np.arange(rows, dtype=np.float32), np.ones(rows, np.float32)], axis=1)
    files = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    for f, part in zip(files, (slice(0, 100), slice(100, rows)), strict=True):
        ids = np.arange(rows)[part]
        pq.write_table(features_table(ids, ids % 3, x[part]), f, row_group_size=group)
    return files, x


def test_streamed_batches_use_every_row_once_per_epoch(tmp_path) -> None:
    files, x = write_row_groups(tmp_path)
    ranks = [ParquetBatches(files, 16, shuffle=True, seed=3, rank=r, world_size=3) for r in range(3)]
    seen = []
    for epoch in (0, 1):
        rows = []
        for batches in ranks:
            batches.set_epoch(epoch)
            got = list(batches)
            assert len(got) == len(batches) == 5  # ceil(230 / (16 * 3)), the same on every rank
            rows += [int(v) for xb, yb in got for v in xb[:, 0]]
            assert all(torch.equal(yb, xb[:, 0].long() % 3) for xb, yb in got)  # labels stay with their rows
        assert sorted(rows) == list(range(len(x)))
        seen.append(rows)
    assert seen[0] != seen[1]  # another shuffle each epoch
    plain = ParquetBatches(files, 100)
    assert [int(v) for xb, _ in plain for v in xb[:, 0]] == list(range(len(x))) and len(plain) == 3


def test_fit_streams_from_parquet(prepared, capsys) -> None:
    dm = GenreDataModule("spotify_tracks", path=str(prepared), stream=True).load()
    assert dm.tensors == {} and isinstance(dm.train_dataloader(), ParquetBatches)
    assert (
        sum(len(y) for _, y in dm.val_dataloader()) == len(dm.splits["val"]) == PreparedData(prepared).num_rows("val")
    )
    assert len(split_files(prepared, "train")) == 1
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "spotify_tracks.yaml"),
            *FAST,
            "--data.path",
            str(prepared),
            "--data.stream",
            "true",
        ]
    )
    assert float(re.search(r"test accuracy: ([0-9.]+)", capsys.readouterr().out).group(1)) > 0.5


def test_streams_by_itself_when_memory_is_short(prepared, monkeypatch) -> None:
    monkeypatch.setattr(PreparedData, "fits_in_memory", lambda self, share=0.5: False)
    assert GenreDataModule("spotify_tracks", path=str(prepared)).load().tensors == {}
    assert GenreDataModule("spotify_tracks", path=str(prepared), stream=False).load().tensors != {}
    assert 0 < PreparedData(prepared).nbytes() < 10**6


def test_load_prepared_returns_the_pieces_and_the_datamodule_takes_them(prepared) -> None:
    from genre_torch.core.data.prepared import load_prepared

    dm = GenreDataModule("spotify_tracks", path=str(prepared), stream=False)
    data, splits, tensors = load_prepared(prepared, "spotify_tracks", dm.hparams, stream=False)
    assert isinstance(data, PreparedData) and set(splits) == set(tensors) == {"train", "val", "test"}
    dm.load()
    assert dm.preprocessor.classes == data.preprocessor.classes and torch.equal(dm.tensors["val"][0], tensors["val"][0])
    assert all((dm.splits[s] == splits[s]).all() for s in splits)
    assert load_prepared(prepared, "spotify_tracks", dm.hparams, stream=True)[2] == {}
