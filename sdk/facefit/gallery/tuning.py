"""Choosing a retriever's search breadth for a recall target, measured on the gallery itself.

The breadth a search needs for a given recall grows with the gallery (and with how
crowded its identities are), so a fixed default is too slow for small galleries and
too loose for large ones. :func:`tune` samples stored faces as queries, finds their
true neighbours by exact search (excluding the face itself), and sets the smallest
breadth whose approximate top-``k`` holds at least ``recall`` of them. Which breadth
a retriever has is its declared :attr:`~facefit.interfaces.Retriever.search_breadth`:
a count such as hnswlib's ``ef`` (:func:`tune_ef`) or a share such as ScaNN's
``leaves_to_search`` (:func:`tune_leaves`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefit.gallery.errors import GalleryError
from facefit.interfaces import Retriever


@dataclass(frozen=True)
class Tuning:
    """The breadth chosen and the recall measured at it (share of the exact top-``k``)."""

    value: float
    """The setting chosen (an int for ``ef``)."""
    recall: float
    k: int
    sample: int
    curve: tuple[tuple[float, float], ...]
    """``(value, recall)`` for every breadth tried."""
    option: str = "ef"
    """The retriever's breadth option tuned (its ``search_breadth.option``)."""

    @property
    def ef(self) -> float:
        """The value chosen (named for hnswlib's option)."""
        return self.value


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


def tune(retriever: Retriever, labels: np.ndarray, **options) -> Tuning:
    """Tune whichever breadth ``retriever`` declares (see :func:`tune_ef`, :func:`tune_leaves`)."""
    spec = retriever.search_breadth
    if spec is None:
        raise GalleryError(
            f"retriever {retriever.name!r} has no search breadth to tune (it is exact already)"
        )
    return (tune_ef if spec.scale == "count" else tune_leaves)(retriever, labels, **options)


def _breadth_option(retriever: Retriever, scale: str) -> str:
    """The name of the retriever's declared breadth of ``scale``, or a clear error."""
    spec = retriever.search_breadth
    if spec is None or spec.scale != scale:
        what = "a count such as ef" if scale == "count" else "a share such as leaves_to_search"
        raise GalleryError(
            f"retriever {retriever.name!r} has no search breadth that is {what} to tune"
        )
    return spec.option


def _recall_meter(
    retriever: Retriever, labels: np.ndarray, recall: float, k: int, sample: int, seed: int
):
    """A function measuring recall@``k`` of the retriever as it is set now, on stored faces."""
    if not 0.0 < recall <= 1.0:
        raise GalleryError(f"recall must be in (0, 1], got {recall}")
    if len(labels) < k + 2:
        raise GalleryError(f"the gallery needs more than {k + 1} faces to tune a top-{k} search")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(labels, size=min(sample, len(labels)), replace=False)
    queries = retriever.get_vectors(chosen)
    truth = exact_neighbours(retriever, labels, queries, k + 1)
    truth_sets = [set(row.tolist()) - {int(q)} for row, q in zip(truth, chosen)]

    def measure() -> float:
        found = retriever.search(queries, k + 1)[1]
        return float(
            np.mean(
                [
                    len((set(f.tolist()) - {int(q)}) & t) / len(t)
                    for f, q, t in zip(found, chosen, truth_sets)
                ]
            )
        )

    return measure, len(chosen)


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
    """The smallest count breadth (hnswlib's ``ef``: doubling, then bisecting) reaching
    ``recall``; it is left set on the retriever.

    When even ``max_ef`` falls short, ``max_ef`` is returned with the recall it reached.
    """
    option = _breadth_option(retriever, "count")
    meter, sampled = _recall_meter(retriever, labels, recall, k, sample, seed)
    curve: dict[int, float] = {}

    def measure(ef: int) -> float:
        if ef not in curve:
            retriever.set_breadth(ef)
            curve[ef] = meter()
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
    retriever.set_breadth(high)
    return Tuning(high, curve[high], k, sampled, tuple(sorted(curve.items())), option=option)


LEAF_SHARES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""The ``leaves_to_search`` shares :func:`tune_leaves` tries, smallest first."""


def tune_leaves(
    retriever: Retriever,
    labels: np.ndarray,
    *,
    recall: float = 0.99,
    k: int = 10,
    sample: int = 200,
    seed: int = 0,
) -> Tuning:
    """The smallest share breadth (ScaNN's ``leaves_to_search``) in :data:`LEAF_SHARES`
    reaching ``recall``.

    It is left set on the retriever; when even all leaves fall short, 1.0 is returned
    with the recall it reached. An untrained (small, exact) index needs no tuning. A
    retriever that trains itself keeps ``recall`` as its ``recall_target``.
    """
    option = _breadth_option(retriever, "share")
    if not retriever.trained:
        raise GalleryError(
            f"retriever {retriever.name!r} is not trained yet: it searches exactly until "
            f"{retriever.train_at} faces, nothing to tune"
        )
    meter, sampled = _recall_meter(retriever, labels, recall, k, sample, seed)
    retriever.recall_target = recall  # and keep it when the index is trained again
    curve: dict[float, float] = {}
    for share in LEAF_SHARES:
        retriever.set_breadth(share)
        curve[share] = meter()
        if curve[share] >= recall:
            break
    return Tuning(share, curve[share], k, sampled, tuple(sorted(curve.items())), option=option)
