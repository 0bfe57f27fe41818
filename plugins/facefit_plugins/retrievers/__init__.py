"""Retrievers ``exact`` and ``hnswlib``: cosine nearest neighbours over face embeddings.

(``scann``, for galleries of hundreds of thousands of faces, is the plugin
:mod:`facefit_plugins.retrievers.scann`; ``milvus``, a gallery in a Milvus database,
the plugin :mod:`facefit_plugins.retrievers.milvus`: each has its own entry point.)

- :class:`ExactRetriever` compares a query with every stored vector (one matrix
  product): always right, linear in the gallery size. numpy on the CPU; torch when a
  CUDA device is there (``device="auto"``) or asked for.
- :class:`HnswRetriever` searches an HNSW graph (hnswlib): sub-linear, approximate.
  ``M``, ``ef_construction`` and ``ef`` are recreated from the gallery manifest, so a
  loaded index searches exactly as it did when saved (hnswlib's own file forgets ``ef``).

Both L2-normalize what they are given, grow when full, and are not safe for writes
concurrent with searches by themselves: :class:`facefit.gallery.GalleryIndex` holds a
readers–writer lock around them.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.devices import resolve_device
from facefit.errors import InputError, PluginError
from facefit.interfaces import Retriever, SearchBreadth
from facefit.vectors import check_k, check_labels, normalize_rows

__all__ = ["ExactRetriever", "HnswRetriever"]

log = logging.getLogger(__name__)

_MAX_SCORES = 1 << 25
"""Largest query×gallery score block computed at once (128 MiB of float32)."""

_SMALL_BATCH = 8
"""Up to this many queries are scored without BLAS. OpenBLAS runs a matrix–vector
product on all cores, and on a busy machine waking its threads costs more than the
product itself: 11 ms instead of 0.3 ms for 10,000 faces, measured here. ``einsum``
stays on the calling thread."""


def _cuda_device(requested: str) -> str | None:
    """The torch device to search on, or None for numpy.

    The device name means what it means everywhere (:func:`facefit.devices.resolve_device`);
    ``auto`` also falls back to numpy where torch is not installed.
    """
    if requested == "cpu":
        return None
    # importing torch costs a second: for auto, only look when an NVIDIA driver is there
    nvidia = os.path.exists("/proc/driver/nvidia/version")
    if requested == "auto" and "torch" not in sys.modules and not nvidia:
        return None
    try:
        import torch  # noqa: F401 - resolve_device needs it
    except ImportError:
        if requested == "auto":
            return None
        raise PluginError(
            f"retriever 'exact': device {requested!r} needs torch; use device='cpu'"
        ) from None
    try:
        device = resolve_device(requested, "retriever 'exact': device")
    except InputError as exc:
        raise PluginError(str(exc)) from None
    return None if device == "cpu" else device


class ExactRetriever(Retriever):
    """Exact cosine search over every stored vector (numpy, or torch on a CUDA device)."""

    name = "exact"

    def __init__(self, dim: int, device: str = "auto", capacity: int = 1024) -> None:
        super().__init__(dim)
        self.device = device
        self._vectors = np.empty((max(1, capacity), dim), dtype=np.float32)
        self._labels = np.empty(max(1, capacity), dtype=np.int64)
        self._row: dict[int, int] = {}
        self._n = 0
        self._torch_device: str | bool | None = False  # False: not resolved yet
        self._on_device: Any = None  # torch copy of the vectors, None when stale

    def __len__(self) -> int:
        return self._n

    def params(self) -> dict[str, Any]:
        return {"device": self.device}

    def _grow(self, needed: int) -> None:
        if needed <= len(self._vectors):
            return
        size = max(needed, 2 * len(self._vectors))
        vectors = np.empty((size, self.dim), dtype=np.float32)
        labels = np.empty(size, dtype=np.int64)
        vectors[: self._n] = self._vectors[: self._n]
        labels[: self._n] = self._labels[: self._n]
        self._vectors, self._labels = vectors, labels

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; a label already present gets its vector replaced."""
        vectors = normalize_rows(self.check_vectors(vectors), "vectors to add")
        labels = check_labels(labels, len(vectors))
        self._grow(self._n + len(labels))
        for label, vector in zip(labels.tolist(), vectors):
            row = self._row.get(label)
            if row is None:
                row = self._n
                self._row[label] = row
                self._labels[row] = label
                self._n += 1
            self._vectors[row] = vector
        self._on_device = None

    def remove(self, labels: np.ndarray) -> None:
        labels = check_labels(labels)
        missing = [int(x) for x in labels if int(x) not in self._row]
        if missing:
            raise InputError(f"cannot remove labels not in the index: {missing[:10]}")
        for label in labels.tolist():
            row = self._row.pop(label)
            last = self._n - 1
            if row != last:  # move the last row into the hole
                moved = int(self._labels[last])
                self._vectors[row] = self._vectors[last]
                self._labels[row] = moved
                self._row[moved] = row
            self._n -= 1
        self._on_device = None

    def get_vectors(self, labels: np.ndarray) -> np.ndarray:
        labels = check_labels(labels)
        try:
            rows = [self._row[label] for label in labels.tolist()]
        except KeyError as exc:
            raise InputError(f"label {exc.args[0]} is not in the index") from None
        return self._vectors[rows].copy()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = normalize_rows(self.check_vectors(queries, "queries"), "queries")
        k = check_k(k, self._n)
        if self._torch_device is False:
            self._torch_device = _cuda_device(self.device)
        if self._torch_device:
            return self._search_torch(queries, k)
        vectors, n = self._vectors[: self._n], self._n
        scores = np.empty((len(queries), k), dtype=np.float32)
        rows = np.empty((len(queries), k), dtype=np.int64)
        step = max(1, _MAX_SCORES // n)
        for start in range(0, len(queries), step):
            chunk = queries[start : start + step]
            if len(chunk) <= _SMALL_BATCH:
                block = np.stack([np.einsum("ij,j->i", vectors, q) for q in chunk])
            else:
                block = chunk @ vectors.T
            if k < n:
                top = np.argpartition(block, n - k, axis=1)[:, n - k :]
            else:
                top = np.broadcast_to(np.arange(n), block.shape)
            top_scores = np.take_along_axis(block, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            scores[start : start + step] = np.take_along_axis(top_scores, order, axis=1)
            rows[start : start + step] = np.take_along_axis(top, order, axis=1)
        return scores, self._labels[rows]

    def _search_torch(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        stored = self._on_device
        if stored is None:
            stored = torch.from_numpy(self._vectors[: self._n].copy()).to(self._torch_device)
            self._on_device = stored
        q = torch.from_numpy(queries).to(self._torch_device)
        scores = torch.empty((len(queries), k), dtype=torch.float32)
        rows = torch.empty((len(queries), k), dtype=torch.int64)
        step = max(1, _MAX_SCORES // self._n)
        with torch.no_grad():
            for start in range(0, len(queries), step):
                top = torch.topk(q[start : start + step] @ stored.T, k, dim=1)
                scores[start : start + step] = top.values.cpu()
                rows[start : start + step] = top.indices.cpu()
        return scores.numpy(), self._labels[rows.numpy()]

    def save(self, directory: Path, stem: str) -> list[str]:
        names = [f"{stem}.vectors.npy", f"{stem}.labels.npy"]
        np.save(Path(directory) / names[0], self._vectors[: self._n], allow_pickle=False)
        np.save(Path(directory) / names[1], self._labels[: self._n], allow_pickle=False)
        return names

    def load(self, directory: Path, stem: str) -> None:
        vectors = np.load(Path(directory) / f"{stem}.vectors.npy", allow_pickle=False)
        labels = np.load(Path(directory) / f"{stem}.labels.npy", allow_pickle=False)
        self._empty_for_loading(labels, vectors, f"{directory}/{stem}")
        self.add(labels, vectors)

    def _empty_for_loading(self, labels: np.ndarray, vectors: np.ndarray, where: str) -> None:
        """Check vectors read from disk (``where`` names their files), then hold nothing."""
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(labels) != len(vectors):
            raise InputError(
                f"{where}: stored vectors have shape {vectors.shape} and "
                f"{len(labels)} labels, expected (n, {self.dim}) with one label each"
            )
        self._n = 0
        self._row.clear()


class HnswRetriever(Retriever):
    """Approximate cosine search on an HNSW graph (hnswlib); grows when full.

    ``M`` (links per node) and ``ef_construction`` fix the graph's quality and build
    time; ``ef`` (search breadth, at least ``k``) trades speed for recall at query
    time and can be changed at any time. ``num_threads`` (0: all cores) is used for
    batches of vectors. Removed items are only marked: they stop being returned, and
    their slots are not reused.

    The defaults come from a sweep over SFace-like faces (docs/gallery.md). The
    recall a fixed ``ef`` reaches falls as the gallery grows: set it for your
    gallery's size and recall target with :meth:`facefit.gallery.GalleryIndex.tune`.
    """

    name = "hnswlib"
    search_breadth = SearchBreadth("ef", "count")

    def __init__(
        self,
        dim: int,
        M: int = 32,
        ef_construction: int = 64,
        ef: int = 256,
        capacity: int = 1024,
        num_threads: int = 0,
        seed: int = 100,
    ) -> None:
        super().__init__(dim)
        import hnswlib

        for key, value, low in (
            ("M", M, 2),
            ("ef_construction", ef_construction, 1),
            ("ef", ef, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PluginError(
                    f"retriever 'hnswlib': {key} must be an integer ≥ {low}, got {value!r}"
                )
        self.M = M
        self.ef_construction = ef_construction
        self.seed = seed
        self.num_threads = num_threads if num_threads > 0 else (os.cpu_count() or 1)
        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(
            max_elements=max(1, capacity), M=M, ef_construction=ef_construction, random_seed=seed
        )
        self._index.set_num_threads(self.num_threads)
        self._deleted: set[int] = set()
        self.ef = ef

    @property
    def ef(self) -> int:
        """Search breadth: higher finds more of the true neighbours, slower."""
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PluginError(f"retriever 'hnswlib': ef must be a positive integer, got {value!r}")
        self._ef = value
        self._index.set_ef(value)

    @property
    def capacity(self) -> int:
        """Items the graph holds before it has to grow."""
        return int(self._index.get_max_elements())

    def __len__(self) -> int:
        return int(self._index.element_count) - len(self._deleted)

    def params(self) -> dict[str, Any]:
        return {
            "M": self.M,
            "ef_construction": self.ef_construction,
            "ef": self.ef,
            "seed": self.seed,
        }

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; a label already present (even removed) gets its vector replaced."""
        vectors = normalize_rows(self.check_vectors(vectors), "vectors to add")
        labels = check_labels(labels, len(vectors))
        if not len(labels):
            return
        needed = int(self._index.element_count) + len(labels)
        if needed > self.capacity:
            # double, so n adds cost O(n) copies in all
            self._index.resize_index(max(needed, 2 * self.capacity))
        self._index.add_items(vectors, labels, num_threads=self.num_threads)
        self._deleted.difference_update(labels.tolist())

    def remove(self, labels: np.ndarray) -> None:
        labels = check_labels(labels)
        self.get_vectors(labels)  # raises naming a missing label before anything changes
        for label in labels.tolist():
            self._index.mark_deleted(label)
            self._deleted.add(label)

    def get_vectors(self, labels: np.ndarray) -> np.ndarray:
        labels = check_labels(labels)
        gone = [x for x in labels.tolist() if x in self._deleted]
        if gone:
            raise InputError(f"labels not in the index (removed): {gone[:10]}")
        try:
            return np.asarray(self._index.get_items(labels, return_type="numpy"), np.float32)
        except RuntimeError:
            raise InputError(
                f"some of the labels {labels[:10].tolist()} are not in the index"
            ) from None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = normalize_rows(self.check_vectors(queries, "queries"), "queries")
        k = check_k(k, len(self))
        try:
            labels, distances = self._index.knn_query(queries, k, num_threads=self.num_threads)
        except RuntimeError:
            # fewer than k reachable (many removed items): search wider once
            log.info("hnswlib found fewer than k=%d items at ef=%d; retrying wider", k, self.ef)
            self._index.set_ef(max(4 * self.ef, 4 * k))
            try:
                labels, distances = self._index.knn_query(queries, k, num_threads=self.num_threads)
            except RuntimeError:
                raise InputError(
                    f"the index cannot return k={k} items (too many were removed); "
                    "ask for fewer or rebuild the gallery"
                ) from None
            finally:
                self._index.set_ef(self.ef)
        return 1.0 - distances, labels.astype(np.int64)

    def save(self, directory: Path, stem: str) -> list[str]:
        names = [f"{stem}.hnsw", f"{stem}.deleted.npy"]
        self._index.save_index(str(Path(directory) / names[0]))
        deleted = np.array(sorted(self._deleted), dtype=np.int64)
        np.save(Path(directory) / names[1], deleted, allow_pickle=False)
        return names

    def load(self, directory: Path, stem: str) -> None:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=self.dim)
        index.load_index(str(Path(directory) / f"{stem}.hnsw"), max_elements=0)
        if index.dim != self.dim:
            raise InputError(
                f"{directory}/{stem}.hnsw holds {index.dim}-d vectors, expected {self.dim}"
            )
        index.set_num_threads(self.num_threads)
        self._index = index
        self.M = int(index.M)
        self.ef_construction = int(index.ef_construction)
        self.ef = self._ef  # hnswlib's file does not keep ef: restore it
        deleted = np.load(Path(directory) / f"{stem}.deleted.npy", allow_pickle=False)
        self._deleted = set(deleted.astype(np.int64).tolist())


@hookimpl
def register_retrievers(register) -> None:
    register(ExactRetriever)
    register(HnswRetriever)
