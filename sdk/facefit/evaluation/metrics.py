"""Identification metrics from a probe × identity score matrix.

``scores[i, j]`` is how strongly probe ``i`` matches gallery identity ``j`` (higher
is better; ``-inf`` where nothing was scored) and ``truth[i]`` the column of probe
``i``'s true identity. A probe that failed (no face found, unreadable evidence) keeps
a row of ``-inf``: it counts as a miss at every rank and as a rejected genuine
pair, never silently dropped — dropping failures would flatter a method.

Ties are ranked pessimistically: the true identity's rank is one plus the number of
*other* identities scoring at least as high, so a constant score never counts as a hit.

**Person level.** Where a benchmark says which identities show the same person
(FS2K labels every photo as its own identity, yet many show one celebrity),
:func:`person_scores` collapses the identity columns to one column per person, scored
by the person's best identity. Ranking that matrix makes a top hit on another photo of
the true person a hit, and counts every person once in the CMC: the ranks are over
distinct persons, so the photos of a person ranked below its best are not counted
again, and an impostor person with two photos in the gallery takes one rank, not two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from facefit.errors import InputError

__all__ = [
    "FARS",
    "RANKS",
    "IdentificationMetrics",
    "cmc",
    "far_threshold",
    "genuine_impostor",
    "group_breakdown",
    "identification_metrics",
    "person_codes",
    "person_scores",
    "tar_at_far",
    "true_ranks",
    "wilson_interval",
]

RANKS = (1, 5, 10)
FARS = (1e-2, 1e-3)


def _check(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    if scores.ndim != 2 or truth.shape != (scores.shape[0],):
        raise InputError(
            f"scores must be (probes, identities) and truth (probes,), got {scores.shape} "
            f"and {truth.shape}"
        )
    if scores.shape[1] == 0:
        raise InputError("scores have no identity columns: the gallery is empty")
    if len(truth) and (truth.min() < 0 or truth.max() >= scores.shape[1]):
        raise InputError("truth holds a column outside the score matrix")
    if np.isnan(scores).any():
        raise InputError("scores contain NaN")
    return scores, truth


def true_ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of each probe's true identity; ties count against the probe."""
    scores, truth = _check(scores, truth)
    genuine = scores[np.arange(len(truth)), truth]
    at_least = (scores >= genuine[:, None]).sum(axis=1)  # includes the true column itself
    return at_least.astype(np.int64)


def person_codes(identities: Sequence[str], persons: Mapping[str, str]) -> np.ndarray:
    """Per identity column, the index of its person (0, 1, … in order of first column).

    ``persons`` maps identities to declared persons; an identity without one is its own
    person (never merged with a declared person of the same name).
    """
    keys = [(True, persons[i]) if i in persons else (False, i) for i in identities]
    index = {key: n for n, key in enumerate(dict.fromkeys(keys))}
    return np.array([index[key] for key in keys], np.int64)


def person_scores(
    scores: np.ndarray, truth: np.ndarray, persons: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Collapse identity columns to persons: ``(probes, persons)`` scores and true persons.

    ``persons[j]`` is the person index of column ``j`` (see :func:`person_codes`); a
    person's score is the best score of its columns, and a probe's true person is that
    of its true column.
    """
    scores, truth = _check(scores, truth)
    persons = np.asarray(persons, dtype=np.int64)
    if persons.shape != (scores.shape[1],):
        raise InputError(f"{len(persons)} person codes for {scores.shape[1]} identity columns")
    if persons.min() < 0:
        raise InputError("person codes must be 0 or more")
    order = np.argsort(persons, kind="stable")
    ordered = persons[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    collapsed = np.maximum.reduceat(scores[:, order], starts, axis=1)
    # the person indices present, in order; a probe's true person → its collapsed column
    column_of = np.full(int(persons.max()) + 1, -1, np.int64)
    column_of[ordered[starts]] = np.arange(len(starts))
    return collapsed, column_of[persons[truth]]


def cmc(ranks: np.ndarray, max_rank: int) -> np.ndarray:
    """Cumulative match characteristic: ``cmc[k-1]`` = fraction of probes with rank ≤ k."""
    ranks = np.asarray(ranks)
    if len(ranks) == 0:
        return np.full(max_rank, np.nan)
    counts = np.bincount(np.minimum(ranks, max_rank + 1), minlength=max_rank + 2)[1 : max_rank + 1]
    return np.cumsum(counts) / len(ranks)


def genuine_impostor(
    scores: np.ndarray, truth: np.ndarray, failed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Genuine scores (one per probe) and impostor scores (every other identity).

    Rows of failed probes give a ``-inf`` genuine score (a false reject) and no
    impostor scores (no comparison was made).
    """
    scores, truth = _check(scores, truth)
    rows = np.arange(len(truth))
    genuine = scores[rows, truth].copy()
    mask = np.ones_like(scores, dtype=bool)
    mask[rows, truth] = False
    if failed is not None:
        failed = np.asarray(failed, dtype=bool)
        genuine[failed] = -np.inf
        mask[failed] = False
    return genuine, scores[mask]


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float | None:
    """True-accept rate at the strictest threshold whose false-accept rate is ≤ ``far``.

    A pair is accepted when its score is strictly above the threshold ``t``, the
    ``⌊far·n⌋``-th highest impostor score (0-based), so at most ``far·n`` impostors
    pass. ``None`` when there are fewer than ``1/far`` impostor scores: the rate
    cannot be measured.
    """
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    if not 0 < far < 1:
        raise InputError(f"FAR must be between 0 and 1, got {far}")
    if len(genuine) == 0:
        return None
    threshold = far_threshold(impostor, far)
    return None if threshold is None else float(np.mean(genuine > threshold))


def far_threshold(impostor: np.ndarray, far: float) -> float | None:
    """The strictest threshold whose false-accept rate is ≤ ``far`` (accept: score > it).

    The ``⌊far·n⌋``-th highest impostor score (0-based; ``-inf`` when that is past the
    end); ``None`` when there are fewer than ``1/far`` impostor scores.
    """
    impostor = np.asarray(impostor, dtype=np.float64)
    if not 0 < far < 1:
        raise InputError(f"FAR must be between 0 and 1, got {far}")
    if len(impostor) * far < 1 - 1e-9:
        return None
    allowed = math.floor(far * len(impostor) + 1e-9)
    ordered = np.sort(impostor)[::-1]
    return float(ordered[allowed]) if allowed < len(ordered) else -math.inf


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a rate of ``hits`` in ``n`` (95% by default)."""
    if n == 0:
        return (math.nan, math.nan)
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def group_breakdown(
    ranks: np.ndarray,
    groups: Sequence[Mapping[str, str]],
    known: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, dict[str, float | int | list[float] | str | None]]]:
    """Rank-1 per value of each attribute group, with its 95% Wilson interval.

    ``groups[i]`` labels probe ``i`` (``{"gender": "female"}``); a probe without a
    label for a group is left out of that group only. The interval shows whether a
    gap between values is more than noise. A value in ``known`` (default
    :data:`facefit.evaluation.groups.KNOWN_VALUES`) of a group that labels some probe,
    but no probe of this value, is reported with ``probes: 0``, ``rank1: None`` and
    ``status: "no probes"`` — never as 0%.
    """
    from facefit.evaluation.groups import KNOWN_VALUES, NO_PROBES

    known = KNOWN_VALUES if known is None else known
    ranks = np.asarray(ranks)
    if len(groups) != len(ranks):
        raise InputError(f"{len(groups)} group labels for {len(ranks)} probes")
    names = sorted({name for labels in groups for name in labels})
    out: dict[str, dict[str, dict[str, float | int | list[float] | str | None]]] = {}
    for name in names:
        values: dict[str, list[int]] = {v: [] for v in known.get(name, ())}
        for rank, labels in zip(ranks, groups):
            if name in labels:
                values.setdefault(labels[name], []).append(int(rank))
        out[name] = {}
        for value in sorted(values):
            if not values[value]:
                out[name][value] = {
                    "probes": 0,
                    "rank1": None,
                    "rank1_ci95": None,
                    "status": NO_PROBES,
                }
                continue
            r = np.asarray(values[value])
            hits = int((r == 1).sum())
            lo, hi = wilson_interval(hits, len(r))
            out[name][value] = {
                "probes": len(r),
                "rank1": hits / len(r),
                "rank1_ci95": [round(lo, 4), round(hi, 4)],
            }
    return out


@dataclass(frozen=True)
class IdentificationMetrics:
    """What one mode achieved on one probe set."""

    probes: int
    identities: int
    failed: int
    ranks: np.ndarray = field(repr=False)
    cmc: np.ndarray = field(repr=False)
    rank_rates: dict[int, float]
    tar: dict[float, float | None]
    groups: dict = field(default_factory=dict)
    group_fairness: dict = field(default_factory=dict)
    """Per group name: the rank-1 gap with its bootstrap interval and FMR/FNMR per value
    at the overall FMR 1e-2 threshold (:func:`facefit.evaluation.groups.group_report`)."""
    genuine_mean: float | None = None
    impostor_mean: float | None = None
    scoring: str = "photo"
    """``"photo"``: every gallery identity counts on its own; ``"person"``: identities of
    one person are one (then :attr:`identities` counts persons)."""

    @property
    def rank1(self) -> float:
        return self.rank_rates[1]

    def to_json(self) -> dict:
        return {
            "scoring": self.scoring,
            "probes": self.probes,
            "persons" if self.scoring == "person" else "identities": self.identities,
            "failed": self.failed,
            **{f"rank{k}": _round(v) for k, v in self.rank_rates.items()},
            "tar_at_far": {f"{far:g}": _round(v) for far, v in self.tar.items()},
            "cmc": [_round(v) for v in self.cmc],
            "genuine_mean": _round(self.genuine_mean),
            "impostor_mean": _round(self.impostor_mean),
            "groups": self.groups,
            "group_fairness": self.group_fairness,
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _finite_mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def identification_metrics(
    scores: np.ndarray,
    truth: np.ndarray,
    *,
    failed: np.ndarray | None = None,
    groups: Sequence[Mapping[str, str]] | None = None,
    max_rank: int | None = None,
    ranks: Sequence[int] = RANKS,
    fars: Sequence[float] = FARS,
    persons: np.ndarray | None = None,
) -> IdentificationMetrics:
    """Rank-k rates, the CMC curve, TAR at each FAR and the group breakdown.

    With ``persons`` (the person index of each column, :func:`person_codes`), they are
    measured at person level: on :func:`person_scores`, so genuine is the best score of
    the true person's photos and the impostors are one best score per other person.
    """
    from facefit.evaluation.groups import group_report

    scoring = "photo"
    if persons is not None:
        scores, truth = person_scores(scores, truth, persons)
        scoring = "person"
    scores, truth = _check(scores, truth)
    failed = np.zeros(len(truth), bool) if failed is None else np.asarray(failed, bool)
    scores = scores.copy()
    scores[failed] = -np.inf
    probe_ranks = true_ranks(scores, truth)
    n_identities = scores.shape[1]
    max_rank = max_rank or min(n_identities, 50)
    curve = cmc(probe_ranks, max(max_rank, *ranks))
    genuine, impostor = genuine_impostor(scores, truth, failed)
    return IdentificationMetrics(
        probes=len(truth),
        identities=n_identities,
        failed=int(failed.sum()),
        ranks=probe_ranks,
        cmc=curve[:max_rank],
        rank_rates={k: float(curve[k - 1]) if len(truth) else math.nan for k in ranks},
        tar={far: tar_at_far(genuine, impostor, far) for far in fars},
        groups=group_breakdown(probe_ranks, groups) if groups is not None else {},
        group_fairness=(
            group_report(scores, truth, probe_ranks, groups, failed=failed)
            if groups is not None
            else {}
        ),
        genuine_mean=_finite_mean(genuine),
        impostor_mean=_finite_mean(impostor),
        scoring=scoring,
    )
