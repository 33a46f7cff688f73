"""Score raw rows in a dataset's own CSV format from a checkpoint alone: `genre-torch predict` and load_predictor()."""

from __future__ import annotations

import csv
import gzip
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genre_torch.core.checkpoints import data_state
from genre_torch.core.datasets import SPECS, DatasetSpec, spec_from_checkpoint_state, warn_problems
from genre_torch.core.errors import GenreTorchError
from genre_torch.core.module import GenreClassifier
from genre_torch.core.preprocessing import Preprocessor
from genre_torch.core.provenance import check_against
from genre_torch.tools import parsers
from genre_torch.tools.common import atomic_path, check_output, load_checkpoint, load_model

TOP_K = 3
ALL_MISSING = "every feature is missing"
NOT_FINITE = "the model gave non-finite probabilities"
UNSEEN_SHARE = 0.5  # above this share of unseen categorical values the input probably belongs to another dataset


class Predictor:
    """A trained model with its fitted preprocessing: predict(df) turns raw rows into named genres."""

    def __init__(self, model: GenreClassifier, preprocessor: Preprocessor, spec: DatasetSpec, batch_size: int = 8192):
        self.model, self.preprocessor, self.spec, self.batch_size = model.eval(), preprocessor, spec, batch_size

    @property
    def classes(self) -> list[str]:
        """Genre names in class-index order."""
        return self.preprocessor.classes

    @torch.inference_mode()
    def probabilities(self, clean: pd.DataFrame) -> np.ndarray:
        """Class probabilities of cleaned rows, scored in batches (bounded memory)."""
        x = self.preprocessor.transform(clean)
        parts = [self.model(x[i : i + self.batch_size]).softmax(-1) for i in range(0, len(x), self.batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, len(self.classes)), np.float32)

    def predict(self, df: pd.DataFrame, clean: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per input row, same index: id columns, predicted_genre, probability, top-3, error.

        clean: the rows as spec.clean(df, training=False) gives them, when the caller has them already.
        """
        if clean is None:
            clean = self.spec.clean(df, training=False)  # keeps every row, in order; checks the columns
        keep = [c for c in (*self.spec.id_columns, self.spec.target) if c in df.columns]
        out = df[keep].copy()
        for col in keep:  # integer ids that pandas read as float because of empty rows: written as read
            values = out[col]
            if values.dtype.kind == "f" and values.notna().any():
                known = values.dropna()
                if ((known % 1 == 0) & (known.abs() < 2**53)).all():
                    out[col] = values.astype("Int64")
        scorable = clean[list(self.spec.features)].notna().any(axis=1).to_numpy().copy()
        probs = np.full((len(df), len(self.classes)), np.nan, dtype=np.float32)
        probs[scorable] = self.probabilities(clean[scorable])
        finite = np.isfinite(probs).all(axis=1)
        errors = np.where(scorable, np.where(finite, None, NOT_FINITE), ALL_MISSING)
        scorable &= finite
        probs[~scorable] = np.nan
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


def mismatch(columns: list[str], spec: DatasetSpec, unseen: int, total: int, example: str) -> str | None:
    """A one-line note when the input looks like another dataset or most of its categories are unknown, else None."""

    def share(other: DatasetSpec) -> float:
        wanted = {*other.features, other.target, *other.id_columns}
        return len(wanted & set(columns)) / len(wanted)

    notes = []
    others = [s for s in SPECS.values() if s.name != spec.name and set(s.features) <= set(columns)]
    best = max(others, key=share, default=None)
    if best is not None and share(best) > share(spec):
        notes.append(f"the input looks like {best.name}; this checkpoint was trained on {spec.name}")
    if total and unseen / total > UNSEEN_SHARE:
        notes.append(f"{unseen / total:.0%} of its categorical values were never seen in training ({example})")
    return "; ".join(notes) or None


def load_predictor(ckpt_path: str | os.PathLike, batch_size: int = 8192) -> Predictor:
    """A Predictor from a checkpoint written by `genre-torch fit` (no training data needed)."""
    ckpt = load_checkpoint(ckpt_path)
    state = data_state(ckpt)
    spec = spec_from_checkpoint_state(state)
    return Predictor(load_model(ckpt), Preprocessor.from_state_dict(state["preprocessor"]), spec)


def read_chunks(path: str | os.PathLike, rows: int) -> Iterator[pd.DataFrame]:
    """Read a .csv / .csv.gz in chunks of `rows` rows; unreadable input is a clear error."""
    if Path(path).is_dir() or not Path(path).exists():  # a pipe is fine: --input <(zcat songs.csv.gz)
        raise GenreTorchError(f"input file {path} {'is a folder' if Path(path).is_dir() else 'does not exist'}")
    try:
        with pd.read_csv(path, chunksize=rows, low_memory=False) as reader:
            yield from reader
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, EOFError, OSError, zlib.error) as e:
        raise GenreTorchError(f"{path} is not a readable CSV file ({type(e).__name__}: {e})") from None


def main(argv: list[str]) -> None:
    """`genre-torch predict --ckpt_path CKPT --input songs.csv --output predictions.csv`."""
    args = parsers.predict().parse_args(argv)
    if args.chunk_size < 1:
        raise GenreTorchError("--chunk_size must be at least 1")
    check_output(args.output, (args.input, args.ckpt_path))
    predictor = load_predictor(args.ckpt_path)
    check_against(args.ckpt_path, None)  # one warning line when other code trained it (new rows are the point here)
    target = predictor.spec.target
    start, rows, failed, labelled, correct = time.perf_counter(), 0, 0, 0, 0
    unseen, total, example, columns, reasons = 0, 0, "", [], set()
    problems: dict[str, Counter] = {}
    opener = gzip.open if str(args.output).endswith(".gz") else open  # a .csv.gz name gets a gzip file
    with atomic_path(args.output) as tmp, opener(tmp, "wt", newline="") as fh:
        for chunk in read_chunks(args.input, args.chunk_size):
            try:
                clean = predictor.spec.clean(chunk, training=False, problems=problems)  # warned once, below
            except GenreTorchError as e:  # missing columns: name the dataset the input seems to be
                note = mismatch(list(chunk.columns), predictor.spec, 0, 0, "")
                raise GenreTorchError(f"{e}; {note}" if note else str(e)) from None
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
        note = mismatch(columns, predictor.spec, unseen, total, example)
        if failed == rows:
            why = "; ".join([*sorted(reasons), *([note] if note else [])])
            raise GenreTorchError(f"none of the {rows} rows of {args.input} could be scored: {why}")
    seconds = time.perf_counter() - start
    warn_problems(predictor.spec.name, problems)
    print(f"scored {rows} rows in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} rows/s) -> {args.output}")
    if note:
        print(f"warning: {note}; the predictions may mean nothing", file=sys.stderr)
    if failed:
        print(f"{failed} row(s) could not be scored; see the error column", file=sys.stderr)
    if labelled:
        print(f"accuracy: {correct / labelled:.4f} ({correct} of {labelled} rows with a {target} label)")
