"""A toy two-stage retriever plugin for facefit.

Each query is first scored on the leading ``prefix`` dimensions of every stored
vector (cheap), the best ``candidates`` are kept, and those are re-scored on all
dimensions (exact). ``candidates`` is the search breadth: more finds more of the
exact top-k, slower. It is declared as :attr:`search_breadth`, so a gallery can
tune it for a recall target (``GalleryIndex.tune``). Real vendors wrap an ANN
library here; the contract stays the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.errors import InputError
from facefit.interfaces import Retriever, SearchBreadth
from facefit.vectors import check_k, check_labels, normalize_rows


class PrefilterRetriever(Retriever):
    """Score on a prefix of the dimensions, re-score the best candidates exactly."""

    name = "toy-prefilter"
    search_breadth = SearchBreadth("candidates", "count")

    def __init__(self, dim: int, prefix: int = 16, candidates: int = 64) -> None:
        super().__init__(dim)
        if not 1 <= prefix <= dim:
            raise InputError(
                f"retriever 'toy-prefilter': prefix must be in [1, {dim}], got {prefix}"
            )
        self.prefix = int(prefix)
        self.candidates = int(candidates)
        self._labels = np.empty(0, np.int64)
        self._vectors = np.empty((0, dim), np.float32)

    def __len__(self) -> int:
        return len(self._labels)

    def params(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "candidates": self.candidates}

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        vectors = normalize_rows(self.check_vectors(vectors), "vectors to add")
        labels = check_labels(labels, len(vectors))
        if np.isin(labels, self._labels).any():
            raise InputError("labels already in the index; remove them first")
        self._labels = np.concatenate([self._labels, labels])
        self._vectors = np.concatenate([self._vectors, vectors])

    def remove(self, labels: np.ndarray) -> None:
        labels = check_labels(labels)
        found = np.isin(labels, self._labels)
        if not found.all():
            raise InputError(f"labels not in the index: {labels[~found].tolist()[:5]}")
        keep = ~np.isin(self._labels, labels)
        self._labels, self._vectors = self._labels[keep], self._vectors[keep]

    def get_vectors(self, labels: np.ndarray) -> np.ndarray:
        labels = check_labels(labels)
        row = {int(label): i for i, label in enumerate(self._labels)}
        missing = [int(x) for x in labels if int(x) not in row]
        if missing:
            raise InputError(f"labels not in the index: {missing[:5]}")
        return self._vectors[[row[int(x)] for x in labels]]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = normalize_rows(self.check_vectors(queries, "queries"), "queries")
        k = check_k(k, len(self))
        keep = min(len(self), max(k, self.candidates))
        rough = queries[:, : self.prefix] @ self._vectors[:, : self.prefix].T
        rows = np.argpartition(-rough, keep - 1, axis=1)[:, :keep]
        exact = np.einsum("qd,qcd->qc", queries, self._vectors[rows])
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(rows, order, axis=1)
        return np.take_along_axis(exact, order, axis=1), self._labels[best]

    def save(self, directory: Path, stem: str) -> list[str]:
        name = f"{stem}.npz"
        np.savez(Path(directory) / name, labels=self._labels, vectors=self._vectors)
        return [name]

    def load(self, directory: Path, stem: str) -> None:
        with np.load(Path(directory) / f"{stem}.npz", allow_pickle=False) as data:
            vectors = data["vectors"]
            if vectors.shape[1:] != (self.dim,):
                raise InputError(f"{directory}/{stem}.npz holds {vectors.shape[1]}-d vectors")
            self._labels, self._vectors = data["labels"].astype(np.int64), vectors


@hookimpl
def register_retrievers(register):
    register(PrefilterRetriever)
