"""Checks on embeddings, labels and ``k`` that every retriever makes the same way.

Part of the plugin SDK: a vendor's retriever calls them as the built-ins do, so a
bad input gets the same clear :class:`~facefit.errors.InputError` whichever index
holds the gallery.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facefit.errors import InputError

__all__ = ["check_k", "check_labels", "check_vectors", "normalize_rows"]


def check_vectors(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a contiguous ``(n, dim)`` float32 array (one vector may be 1-d)."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != dim:
        raise InputError(
            f"{what}: expected shape (n, {dim}) to match the index, got {np.shape(vectors)}"
        )
    return np.ascontiguousarray(array)


def normalize_rows(vectors: np.ndarray, what: str) -> np.ndarray:
    """Unit-length float32 rows; a zero, NaN or infinite row is an :class:`InputError`."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    bad = ~np.isfinite(norms[:, 0]) | (norms[:, 0] < 1e-12)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{what}: row {row} is zero or not finite; pass embeddings from a face encoder"
        )
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def check_labels(labels: Any, n: int | None = None, what: str = "labels") -> np.ndarray:
    """``labels`` as a 1-d int64 array of distinct non-negative integers (``n`` of them)."""
    array = np.asarray(labels)
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise InputError(
            f"{what}: expected a 1-d array of integers, got {array.dtype} {array.shape}"
        )
    array = array.astype(np.int64, copy=False)
    if n is not None and len(array) != n:
        raise InputError(f"{what}: got {len(array)} labels for {n} vectors")
    if array.size and array.min() < 0:
        raise InputError(f"{what}: labels must be non-negative, got {int(array.min())}")
    if len(np.unique(array)) != len(array):
        raise InputError(f"{what}: the same label appears twice in one call")
    return array


def check_k(k: Any, size: int) -> int:
    """``k`` as an int between 1 and the index size, or a clear error."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if size == 0:
        raise InputError("the index is empty: add vectors before searching")
    if k > size:
        raise InputError(f"k={k} is larger than the index ({size} items); ask for at most {size}")
    return int(k)
