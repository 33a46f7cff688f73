"""Score raw rows in a dataset's own CSV format from a checkpoint alone: `genre-torch predict` and load_predictor().

Scoring needs only torch, pandas and the core's preprocessing and backbones: the backbone is built from the
checkpoint's settings and given its weights, without Lightning or the LightningModule.
"""

from __future__ import annotations

import csv
import gzip
import inspect
import io
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from genre_torch.core.compat import data_state
from genre_torch.core.components import bound_arguments, to_factory
from genre_torch.core.data.datasets import SPECS, DatasetSpec, spec_from_checkpoint_state, warn_problems
from genre_torch.core.data.preprocessing import Preprocessor
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.models import Backbone
from genre_torch.core.models.ensemble import build_backbone
from genre_torch.core.training.checkpoints import model_arguments, read_checkpoint
from genre_torch.core.training.provenance import check_against
from genre_torch.core.training.safe_files import atomic_path, check_finite
from genre_torch.tools import parsers

TOP_K = 3
ALL_MISSING = "every feature is missing"
NOT_FINITE = "the model gave non-finite probabilities"
UNSEEN_SHARE = 0.5  # above this share of unseen categorical values the input probably belongs to another dataset
DEFAULT_BACKBONE = "genre_torch.core.models.mlp.MLP"  # GenreClassifier's default
# GenreClassifier's arguments: a checkpoint with others comes from another version, whose model may score
# differently (the predict tests train with today's GenreClassifier, so a new argument missing here fails them)
MODEL_SETTINGS = {"num_features", "num_classes", "num_numeric", "backbone", "criterion", "batch_transform"}
MODEL_SETTINGS |= {"optimizer", "lr_scheduler", "metrics", "compile", "ensemble_size"}


class Predictor:
    """A trained backbone with its fitted preprocessing: raw rows in, genres (predict) or probabilities out."""

    def __init__(self, backbone: nn.Module, preprocessor: Preprocessor, spec: DatasetSpec, batch_size: int = 8192):
        self.backbone, self.preprocessor, self.spec, self.batch_size = backbone.eval(), preprocessor, spec, batch_size

    @property
    def classes(self) -> list[str]:
        """Genre names in class-index order."""
        return self.preprocessor.classes

    def predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities of raw rows, cleaned as `predict` cleans them: one column per genre, df's index.

        A row that cannot be scored (no usable feature) is all NaN; `predict` names the reason.
        """
        _, probs, _ = self._score(df)
        return pd.DataFrame(probs, index=df.index, columns=list(self.classes))

    def predict(self, df: pd.DataFrame, clean: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per input row, same index: id columns, predicted_genre, probability, top-3, error.

        clean: the rows as spec.clean(df, training=False) gives them, when the caller has them already.
        """
        _, probs, errors = self._score(df, clean)
        keep = [c for c in (*self.spec.id_columns, self.spec.target) if c in df.columns]
        out = df[keep].copy()
        for col in keep:  # integer ids that pandas read as float because of empty rows: written as read
            values = out[col]
            if values.dtype.kind == "f" and values.notna().any():
                known = values.dropna()
                if ((known % 1 == 0) & (known.abs() < 2**53)).all():
                    out[col] = values.astype("Int64")
        scorable = pd.isna(errors)
        k = min(TOP_K, len(self.classes))
        top = np.argsort(-np.nan_to_num(probs, nan=0.0), axis=1, kind="stable")[:, :k]
        names = np.asarray(self.classes, dtype=object)
        for rank in range(k):
            genre = np.where(scorable, names[top[:, rank]], None)
            prob = np.where(scorable, np.take_along_axis(probs, top[:, rank : rank + 1], 1)[:, 0], np.nan)
            if rank == 0:
                out["predicted_genre"], out["probability"] = genre, prob
            out[f"top{rank + 1}_genre"], out[f"top{rank + 1}_probability"] = genre, prob
        out["error"] = errors
        return out

    def _score(
        self, df: pd.DataFrame, clean: pd.DataFrame | None = None
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Cleaned rows, probabilities (NaN where not scored) and the error of each row (None where scored)."""
        if clean is None:
            clean = self.spec.clean(df, training=False)  # keeps every row, in order; checks the columns
        scorable = clean[list(self.spec.features)].notna().any(axis=1).to_numpy().copy()
        probs = np.full((len(clean), len(self.classes)), np.nan, dtype=np.float32)
        probs[scorable] = self._probabilities(clean[scorable])
        finite = np.isfinite(probs).all(axis=1)
        errors = np.where(scorable, np.where(finite, None, NOT_FINITE), ALL_MISSING)
        probs[~(scorable & finite)] = np.nan
        return clean, probs, errors

    @torch.inference_mode()
    def _probabilities(self, clean: pd.DataFrame) -> np.ndarray:
        """Class probabilities of rows already cleaned by spec.clean, scored in batches (bounded memory)."""
        x = self.preprocessor.transform(clean)
        parts = [self.backbone(x[i : i + self.batch_size]).softmax(-1) for i in range(0, len(x), self.batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, len(self.classes)), np.float32)

    def unseen(self, clean: pd.DataFrame) -> tuple[int, int, str]:
        """Categorical values (non-missing) never seen in training: their count, the total and an example."""
        unseen, total, example = 0, 0, ""
        for col in self.preprocessor.categorical:
            values = clean[col].dropna()
            new = values[~values.isin(self.preprocessor.vocab[col])]
            unseen, total = unseen + len(new), total + len(values)
            if len(new) and not example:
                expected = ", ".join(map(repr, self.preprocessor.vocab[col][:3]))
                example = f"{col}={new.iloc[0]!r} where training had {expected}, ..."
        return unseen, total, example


def looks_like(columns: list[str], spec: DatasetSpec) -> str | None:
    """The built-in dataset whose columns the input matches better than the checkpoint's own, else None."""

    def share(other: DatasetSpec) -> float:
        wanted = {*other.features, other.target, *other.id_columns}
        return len(wanted & set(columns)) / len(wanted)

    others = [s for s in SPECS.values() if s.name != spec.name and set(s.features) <= set(columns)]
    best = max(others, key=share, default=None)
    return best.name if best is not None and share(best) > share(spec) else None


def mismatch(columns: list[str], spec: DatasetSpec, unseen: int, total: int, example: str) -> str | None:
    """A one-line note when the input looks like another dataset or most of its categories are unknown, else None."""
    notes = []
    other = looks_like(columns, spec)
    if other is not None:
        notes.append(f"the input looks like {other}; this checkpoint was trained on {spec.name}")
    if total and unseen / total > UNSEEN_SHARE:
        notes.append(f"{unseen / total:.0%} of its categorical values were never seen in training ({example})")
    return "; ".join(notes) or None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a genre_torch checkpoint (plain tensors only); a missing, foreign, corrupt or non-finite one is an error."""
    if Path(path).is_dir():
        raise GenreTorchError(f"checkpoint {path} is a folder; pass the .ckpt written by `genre-torch fit`")
    ckpt = read_checkpoint(path)  # exists, zip checksums, readable, a genre_torch checkpoint, finite weights
    if "hyper_parameters" not in ckpt:
        raise GenreTorchError(f"{path} is not a genre_torch checkpoint (no model settings in it)")
    check_finite({"data state": data_state(ckpt)}, path, "data state")  # the preprocessing's median, center and scale
    check_consistent(ckpt, path)
    return ckpt


def check_consistent(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse a checkpoint whose preprocessing state is incomplete or does not fit its model's input and output."""
    try:
        pre = Preprocessor.from_state_dict(data_state(ckpt)["preprocessor"])
        width, genres = pre.num_features, len(pre.classes)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise GenreTorchError(
            f"checkpoint {path} has an incomplete preprocessing state ({type(e).__name__}: {e}); retrain it"
        ) from None
    hparams = ckpt["hyper_parameters"]
    if hparams.get("num_features", width) != width or hparams.get("num_classes", genres) != genres:
        raise GenreTorchError(
            f"checkpoint {path}: its preprocessing gives {width} features and {genres} genres, its model takes "
            f"{hparams.get('num_features')} and gives {hparams.get('num_classes')}; retrain or use another checkpoint"
        )


def load_backbone(ckpt: dict[str, Any]) -> nn.Module:
    """The trained backbone of a loaded checkpoint, built as GenreClassifier builds it, in eval mode."""
    try:
        args = model_arguments(ckpt["hyper_parameters"])
        unknown = sorted(set(args) - MODEL_SETTINGS)
        module = ckpt["hyper_parameters"].get("_class_path", "genre_torch.core.training.module.GenreClassifier")
        if unknown and not module.endswith(".GenreClassifier"):  # a subclass's own settings (--model CLASS)
            unknown = []
        if unknown:
            raise TypeError(f"unknown model setting(s) {', '.join(unknown)}")
        make = to_factory(args.get("backbone") or {"class_path": DEFAULT_BACKBONE}, Backbone)
        fill = "n_numeric" in _parameters(make) and bound_arguments(make).get("n_numeric") is None
        n_numeric = args.get("num_numeric") if fill else None
        size = args.get("ensemble_size") or 1
        backbone = build_backbone(make, args["num_features"], args["num_classes"], n_numeric, size)
        prefix = "backbone."
        weights = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        backbone.load_state_dict(weights)
    except (TypeError, RuntimeError, KeyError) as e:  # settings of another version, weights of another model
        detail = str(e).strip().splitlines()[-1].strip()
        raise GenreTorchError(
            f"the checkpoint's weights do not fit its model settings ({detail}); retrain it"
        ) from None
    return backbone.eval()


def _parameters(factory: Any) -> dict[str, inspect.Parameter]:
    """The parameters of a backbone class or of the class a partial wraps."""
    target = getattr(factory, "func", factory)
    return dict(inspect.signature(target).parameters)


def load_predictor(ckpt_path: str | os.PathLike, batch_size: int = 8192) -> Predictor:
    """A Predictor from a checkpoint written by `genre-torch fit` (no training data needed)."""
    ckpt = load_checkpoint(ckpt_path)
    state = data_state(ckpt)
    spec = spec_from_checkpoint_state(state)
    return Predictor(load_backbone(ckpt), Preprocessor.from_state_dict(state["preprocessor"]), spec, batch_size)


def read_chunks(path: str | os.PathLike, rows: int) -> Iterator[tuple[pd.DataFrame, int]]:
    """Read a .csv / .csv.gz in chunks of `rows` rows, each with the number of repeated header lines left out of it."""
    if Path(path).is_dir() or not Path(path).exists():  # a pipe is fine: --input <(zcat songs.csv.gz)
        raise GenreTorchError(f"input file {path} {'is a folder' if Path(path).is_dir() else 'does not exist'}")
    try:
        with pd.read_csv(path, chunksize=rows, low_memory=False) as reader:
            for chunk in reader:
                yield drop_header_lines(chunk)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, EOFError, OSError, zlib.error) as e:
        raise GenreTorchError(f"{path} is not a readable CSV file ({type(e).__name__}: {e})") from None


def drop_header_lines(chunk: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Leave out rows that repeat the header line (concatenated CSV files); the rest re-read, so ids stay integers."""
    if not len(chunk.columns):
        return chunk, 0
    first = chunk.iloc[:, 0].astype("string").str.strip() == str(chunk.columns[0])
    if not first.any():
        return chunk, 0
    text = chunk[first.to_numpy()].astype("string").apply(lambda s: s.str.strip())
    header = pd.Series(False, index=chunk.index)
    header[first.to_numpy()] = (text == pd.Series(chunk.columns.astype(str), index=chunk.columns)).all(axis=1)
    if not header.any():
        return chunk, 0
    kept = chunk[~header.to_numpy()]
    reread = pd.read_csv(io.StringIO(kept.to_csv(index=False)), low_memory=False)
    return reread.set_axis(kept.index), int(header.sum())


def resolve_input(text: str) -> str | os.PathLike:
    """The file to score: the path given, or for a dataset name the file training finds for that dataset."""
    if not parsers.is_dataset_name(text):
        return text
    if text not in SPECS:
        raise GenreTorchError(f"input {text} is neither a file nor a built-in dataset ({', '.join(SPECS)})")
    from genre_torch.core.data import find_data_file

    return find_data_file(SPECS[text])


def main(argv: list[str]) -> None:
    """`genre-torch predict --ckpt_path CKPT --input songs.csv --output predictions.csv [--force]`."""
    args = parsers.predict().parse_args(argv)  # also checks the files, before torch is imported by the CLI
    source = resolve_input(args.input)
    predictor = load_predictor(args.ckpt_path)
    check_against(args.ckpt_path, None)  # one warning line when other code trained it (new rows are the point here)
    spec, target, force = predictor.spec, predictor.spec.target, args.force
    refuse = "; pass --force to score it anyway"
    start, rows, failed, labelled, correct, headers = time.perf_counter(), 0, 0, 0, 0, 0
    unseen, total, example, columns, reasons = 0, 0, "", [], set()
    usable = pd.Series(dtype=bool)
    problems: dict[str, Counter] = {}
    opener = gzip.open if str(args.output).endswith(".gz") else open  # a .csv.gz name gets a gzip file
    with atomic_path(args.output) as tmp, opener(tmp, "wt", newline="") as fh:
        for chunk, skipped in read_chunks(source, args.chunk_size):
            headers += skipped
            try:
                clean = spec.clean(chunk, training=False, problems=problems)  # warned once, below
            except GenreTorchError as e:  # missing columns: name the dataset the input seems to be
                note = mismatch(list(chunk.columns), spec, 0, 0, "")
                raise GenreTorchError(f"{e}; {note}" if note else str(e)) from None
            other = looks_like(list(chunk.columns), spec) if rows == 0 and not force else None
            if other is not None:
                raise GenreTorchError(
                    f"{args.input} looks like {other} rows; this checkpoint was trained on {spec.name}, so its "
                    f"predictions would mean nothing{refuse}"
                )
            numeric = [c for c in predictor.preprocessor.numeric if c in clean.columns]
            usable = clean[numeric].notna().any().combine(usable, max, fill_value=False)
            table = predictor.predict(chunk, clean)
            # text quoted: pandas' default leaves a bare "\r" in a track name unquoted, splitting the row
            table.to_csv(fh, header=rows == 0, index=False, quoting=csv.QUOTE_NONNUMERIC)
            ok = table["error"].isna()
            rows, failed, columns = rows + len(table), failed + int((~ok).sum()), list(chunk.columns)
            reasons.update(table["error"].dropna())
            new, seen, first = predictor.unseen(clean)
            unseen, total, example = unseen + new, total + seen, example or first
            if target in chunk.columns:  # rows that could not be scored are left out of the accuracy
                truth = chunk[target].astype("string").str.strip()[ok.to_numpy()]
                labelled += int(truth.notna().sum())
                correct += int((truth == table["predicted_genre"][ok.to_numpy()]).fillna(False).sum())
        if rows == 0:
            raise GenreTorchError(f"{args.input} has no rows to score")
        note = mismatch(columns, spec, unseen, total, example)
        if failed == rows:
            why = "; ".join([*sorted(reasons), *([note] if note else [])])
            raise GenreTorchError(f"none of the {rows} rows of {args.input} could be scored: {why}")
        if len(usable) and not usable.any() and not force:
            raise GenreTorchError(
                f"none of the numeric columns of {args.input} has a usable value (all missing, unparseable, "
                f"non-finite or out of range), as `fit` would refuse it; see `genre-torch data check`{refuse}"
            )
    seconds = time.perf_counter() - start
    warn_problems(spec.name, problems)
    if headers:
        print(f"warning: {args.input}: left out {headers} line(s) repeating the header (not songs)", file=sys.stderr)
    print(f"scored {rows} rows in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s) -> {args.output}")
    if note:
        print(f"warning: {note}; the predictions may mean nothing", file=sys.stderr)
    if failed:
        print(f"{failed} row(s) could not be scored; see the error column", file=sys.stderr)
    if labelled:
        print(f"accuracy: {correct / labelled:.4f} ({correct} of {labelled} rows with a {target} label)")
