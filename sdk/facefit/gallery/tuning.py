"""Choosing hnswlib's ``ef`` for a recall target, measured on the gallery itself.

The breadth a search needs for a given recall grows with the gallery (and with how
crowded its identities are), so a fixed default is too slow for small galleries and
too loose for large ones. :func:`tune_ef` samples stored faces as queries, finds
their true neighbours by exact search (excluding the face itself), and returns the
smallest ``ef`` whose approximate top-``k`` holds at least ``recall`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefit.gallery.errors import GalleryError
from facefit.interfaces import Retriever


@dataclass(frozen=True)
class Tuning:
    """The ``ef`` chosen and the recall measured at it (share of the exact top-``k``)."""

    ef: int
    recall: float
    k: int
    sample: int
    curve: tuple[tuple[int, float], ...]
    """``(ef, recall)`` for every breadth tried."""


def exact_neighbours(
    retriever: Retriever, labels: np.ndarray, queries: np.ndarray, k: int
) -> np.ndarray:
    """Labels of the exact top-``k`` of each query, reading the stored vectors in chunks."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_labels = np.full((len(queries), k), -1, np.int64)
    for start in range(0, len(labels), 65_536):
        chunk = labels[start : start + 65_536]
        scores = np.concatenate([queries @ retriever.get_vectors(chunk).T, best_scores], axis=1)
        candidates = np.concatenate(
            [np.broadcast_to(chunk, (len(queries), len(chunk))), best_labels], axis=1
        )
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_labels = np.take_along_axis(candidates, top, axis=1)
    return best_labels


def tune_ef(
    retriever: Retriever,
    labels: np.ndarray,
    *,
    recall: float = 0.99,
    k: int = 10,
    sample: int = 200,
    max_ef: int = 4096,
    seed: int = 0,
) -> Tuning:
    """The smallest ``ef`` (doubling, then bisecting) reaching ``recall``; ``retriever.ef`` is left there.

    When even ``max_ef`` falls short, ``max_ef`` is returned with the recall it reached.
    """
    if not hasattr(retriever, "ef"):
        raise GalleryError(
            f"retriever {retriever.name!r} has no ef to tune (it may be exact already)"
        )
    if not 0.0 < recall <= 1.0:
        raise GalleryError(f"recall must be in (0, 1], got {recall}")
    if len(labels) < k + 2:
        raise GalleryError(f"the gallery needs more than {k + 1} faces to tune a top-{k} search")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(labels, size=min(sample, len(labels)), replace=False)
    queries = retriever.get_vectors(chosen)
    truth = exact_neighbours(retriever, labels, queries, k + 1)
    truth_sets = [set(row.tolist()) - {int(q)} for row, q in zip(truth, chosen)]
    curve: dict[int, float] = {}

    def measure(ef: int) -> float:
        if ef not in curve:
            retriever.ef = ef
            found = retriever.search(queries, k + 1)[1]
            curve[ef] = float(
                np.mean(
                    [
                        len((set(f.tolist()) - {int(q)}) & t) / len(t)
                        for f, q, t in zip(found, chosen, truth_sets)
                    ]
                )
            )
        return curve[ef]

    low, high = 0, max(k + 1, 16)
    while measure(high) < recall and high < max_ef:
        low, high = high, min(2 * high, max_ef)
    if measure(high) >= recall:
        while high - low > max(1, high // 8):  # bisect to within an eighth
            middle = (low + high) // 2
            if middle <= k or measure(middle) < recall:
                low = middle
            else:
                high = middle
    retriever.ef = high
    return Tuning(high, curve[high], k, len(chosen), tuple(sorted(curve.items())))
