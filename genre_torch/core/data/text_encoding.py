"""Titles as features: word and character n-grams of a title column, target-encoded from training songs only.

A title is lower-cased and split into words; its tokens are the word n-grams (1..words) and the character
`chars`-grams inside each word (padded with spaces, as scikit-learn's char_wb). Each token kept gets its
smoothed genre frequencies over the training rows containing it; a row is encoded by the mean over its known
tokens, plus log(1 + the mean token count).

No exact-match lookup: a token counts only when it occurs in at least `min_songs` distinct training songs
(a song is one song_groups id), so a title's full string never stands for one song; and training rows are
encoded out of fold with folds grouped by song, so no row is encoded with its own song's labels.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:  # scipy and sklearn are imported where titles are encoded: scoring other models skips them
    from scipy import sparse

WORD = re.compile(r"\w+")


class Analyzer:
    """Title -> tokens: word n-grams up to `words`, then `#`-prefixed character `chars`-grams within words."""

    def __init__(self, words: int, chars: int) -> None:
        self.words, self.chars = words, chars

    def __call__(self, title: str) -> list[str]:
        found = WORD.findall(unicodedata.normalize("NFKC", title).lower())
        out = [" ".join(found[i : i + n]) for n in range(1, self.words + 1) for i in range(len(found) - n + 1)]
        c = self.chars
        for word in found if c else ():
            padded = f" {word} "
            out += [f"#{padded[i : i + c]}" for i in range(max(1, len(padded) - c + 1))]
        return out


class TextEncoder:
    """Target encoding of a title column's n-grams (see the module docstring); state: plain lists and tensors."""

    def __init__(self, column: str, words: int = 2, chars: int = 4, min_songs: int = 2, smoothing: float = 1.0) -> None:
        self.column, self.words, self.chars, self.min_songs, self.smoothing = column, words, chars, min_songs, smoothing
        self.keys: list[str] = []
        self.num_classes = 0
        self.triplets = torch.zeros(3, 0, dtype=torch.long)  # token index, genre index, rows with the token
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def options(self) -> dict[str, int]:
        """The n-gram options (a spec's `text` entry)."""
        return {"words": self.words, "chars": self.chars, "min_songs": self.min_songs}

    @property
    def feature_names(self) -> list[str]:
        """One column per genre, then the log count."""
        return [f"{self.column}@title~{c}" for c in range(self.num_classes)] + [f"{self.column}@title#log_count"]

    def documents(self, values: pd.Series, vocabulary: list[str] | None = None) -> tuple[sparse.csr_matrix, list[str]]:
        """Binary (rows, tokens) matrix of a title column and its token list (the given vocabulary, else all)."""
        from scipy import sparse
        from sklearn.feature_extraction.text import CountVectorizer

        text = values.astype("string").fillna("").to_numpy(dtype=object)
        vectorizer = CountVectorizer(analyzer=Analyzer(self.words, self.chars), binary=True, vocabulary=vocabulary)
        if vocabulary is not None and not vocabulary:
            return sparse.csr_matrix((len(text), 0), dtype=np.int64), []
        docs = vectorizer.fit_transform(text) if vocabulary is None else vectorizer.transform(text)
        return docs.tocsr(), list(vectorizer.get_feature_names_out()) if vocabulary is None else vocabulary

    def _counts(
        self, docs: sparse.csr_matrix, labels: np.ndarray, songs: np.ndarray
    ) -> tuple[sparse.coo_matrix, np.ndarray]:
        """(token, genre) row counts over the given rows, and which tokens occur in >= min_songs distinct songs."""
        from scipy import sparse

        song_codes, _ = pd.factorize(songs)
        per_song = sparse.csr_matrix((np.ones(len(songs)), (song_codes, np.arange(len(songs)))))
        distinct = np.asarray(((per_song @ docs) > 0).sum(0)).ravel()
        onehot = sparse.csr_matrix(
            (np.ones(len(labels)), (np.arange(len(labels)), labels)), (len(labels), self.num_classes)
        )
        return (docs.T @ onehot).tocoo(), distinct >= self.min_songs

    def fit(
        self, values: pd.Series, labels: np.ndarray, num_classes: int, songs: np.ndarray | None = None
    ) -> TextEncoder:
        """Count genres per token over training rows (labels: class indices; songs: song id per row, default own)."""
        docs, vocabulary = self.documents(values)
        self.fit_documents(
            docs, np.asarray(vocabulary, dtype=object), np.asarray(labels), num_classes, _songs(songs, len(values))
        )
        return self

    def fit_documents(
        self, docs: sparse.csr_matrix, vocabulary: np.ndarray, labels: np.ndarray, num_classes: int, songs: np.ndarray
    ) -> np.ndarray:
        """Fit on a document matrix over `vocabulary`; returns which of its tokens were kept (in their order)."""
        self.num_classes = num_classes
        counts, keep = self._counts(docs, labels, songs)
        index = np.cumsum(keep) - 1  # a kept token's position among the kept ones
        mask = keep[counts.row] & (counts.data > 0)
        self.keys = vocabulary[keep].tolist()
        triplets = np.stack([index[counts.row[mask]], counts.col[mask], counts.data[mask].astype(np.int64)])
        self.triplets = torch.from_numpy(triplets.astype(np.int64))
        self._table = None
        return keep

    def table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per kept token: smoothed genre frequencies and log(1 + count); and the prior (for rows with no token)."""
        if self._table is None:
            counts = torch.zeros(len(self.keys), self.num_classes, dtype=torch.float64)
            counts.index_put_((self.triplets[0], self.triplets[1]), self.triplets[2].double(), accumulate=True)
            total = counts.sum(0)
            prior = total / total.sum().clamp(min=1) if len(self.keys) else torch.full((self.num_classes,), 1.0)
            prior = prior / prior.sum()
            n = counts.sum(1, keepdim=True)
            rows = torch.cat([(counts + self.smoothing * prior) / (n + self.smoothing), n.log1p()], 1)
            self._table = rows.float(), torch.cat([prior, torch.zeros(1, dtype=torch.float64)]).float()
        return self._table

    def transform(self, values: pd.Series) -> torch.Tensor:
        """Encode rows with the fitted statistics: float32 (rows, genres + 1)."""
        docs, _ = self.documents(values, self.keys)
        return self.encode_documents(docs)

    def encode_documents(self, docs: sparse.csr_matrix) -> torch.Tensor:
        """Encode a binary (rows, kept tokens) matrix: the mean table row over each row's tokens (prior if none)."""
        rows, unseen = self.table()
        found = np.asarray(docs.sum(1)).ravel()
        out = torch.from_numpy(np.asarray(docs.astype(np.float32) @ rows.numpy())) if docs.shape[1] else None
        if out is None:
            return unseen.expand(docs.shape[0], -1).clone()
        out = out / torch.from_numpy(np.maximum(found, 1).astype(np.float32))[:, None]
        return torch.where(torch.from_numpy(found > 0)[:, None], out, unseen)

    def fit_transform_oof(
        self,
        values: pd.Series,
        labels: np.ndarray,
        num_classes: int,
        folds: int = 5,
        seed: int = 0,
        groups: np.ndarray | None = None,
        songs: np.ndarray | None = None,
    ) -> torch.Tensor:
        """Out-of-fold encoding of training rows, folds grouped by song (or by `groups`), then fit on all rows."""
        from sklearn.model_selection import GroupKFold

        labels, songs = np.asarray(labels), _songs(songs, len(values))
        groups = songs if groups is None else groups
        docs, vocabulary = self.documents(values.reset_index(drop=True))
        vocabulary = np.asarray(vocabulary, dtype=object)
        out = torch.zeros(len(values), num_classes + 1)
        if folds >= 2 and len(np.unique(groups)) >= folds:
            for fit_idx, enc_idx in GroupKFold(folds, shuffle=True, random_state=seed).split(docs, groups=groups):
                part = TextEncoder(self.column, self.words, self.chars, self.min_songs, self.smoothing)
                keep = part.fit_documents(docs[fit_idx], vocabulary, labels[fit_idx], num_classes, songs[fit_idx])
                out[enc_idx] = part.encode_documents(docs[enc_idx][:, keep])
            self.fit_documents(docs, vocabulary, labels, num_classes, songs)
            return out
        self.fit_documents(docs, vocabulary, labels, num_classes, songs)
        return self.transform(values)

    def state_dict(self) -> dict[str, Any]:
        """Fitted state as plain lists and tensors."""
        fitted = {"keys": self.keys, "num_classes": self.num_classes, "triplets": self.triplets}
        return {"column": self.column, **self.options, "smoothing": self.smoothing, **fitted}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TextEncoder:
        """Rebuild a fitted encoder from state_dict()."""
        enc = cls(state["column"], state["words"], state["chars"], state["min_songs"], state["smoothing"])
        enc.keys, enc.num_classes, enc.triplets = list(state["keys"]), int(state["num_classes"]), state["triplets"]
        return enc


def _songs(songs: np.ndarray | None, n: int) -> np.ndarray:
    """Song id per row; without ids every row is its own song."""
    return np.arange(n) if songs is None else np.asarray(songs)
