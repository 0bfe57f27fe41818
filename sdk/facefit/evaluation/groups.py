"""Accuracy by demographic group: the rank-1 gap and error rates at a shared threshold.

An identification tool that works less well for one group gives that group more false
leads and more missed matches, so every evaluation reports, per attribute group
(``gender``, apparent ``skin_tone``), as NIST FRVT's demographic reports do:

- :func:`rank1_gap` — the best group's rank-1 minus the worst's, with a bootstrap
  interval (each group's probes resampled on their own, so the groups keep their sizes);
- :func:`error_rates_at_fmr` — false match and false non-match rates per group at the
  one threshold that gives the *overall* false match rate asked for (1e-2 by default):
  a deployment sets one threshold for everyone, so the groups' rates are read there.

A value of a group that the evaluation knows (:data:`KNOWN_VALUES`) but that has no probe
is reported with ``probes: 0`` and ``status: "no probes"`` and rates of ``None``, never as
0%. Impostor comparisons are grouped by the *probe's* group (its comparisons with every
other gallery identity), since the gallery identities carry no labels in the harness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from facefit.errors import InputError

__all__ = [
    "FMR",
    "KNOWN_VALUES",
    "error_rates_at_fmr",
    "group_members",
    "group_report",
    "rank1_gap",
]

FMR = 1e-2
"""The overall false match rate at which per-group rates are read."""

KNOWN_VALUES: dict[str, tuple[str, ...]] = {
    "gender": ("female", "male"),
    "skin_tone": ("dark", "light", "medium"),
}
"""Values each group is expected to have, so a value without probes is reported as such."""

NO_PROBES = "no probes"


def group_members(
    groups: Sequence[Mapping[str, str]],
    name: str,
    known: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Per value of group ``name``: the indices of the probes labelled with it.

    Values in ``known`` come first (in that order), with an empty array where no probe
    has them; then any other value found, sorted. Probes without a label are left out.
    """
    found: dict[str, list[int]] = {}
    for i, labels in enumerate(groups):
        if name in labels:
            found.setdefault(labels[name], []).append(i)
    values = list(known) + sorted(v for v in found if v not in known)
    return {v: np.asarray(found.get(v, []), np.int64) for v in values}


def rank1_gap(
    ranks: np.ndarray,
    members: Mapping[str, np.ndarray],
    *,
    rounds: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Best group's rank-1 minus the worst's, with a stratified bootstrap interval.

    ``members`` maps each value to its probes' indices (:func:`group_members`). Values
    without probes take no part and are listed under ``no_probes``. The interval is the
    percentile interval of ``rank1(best) − rank1(worst)`` over ``rounds`` resamplings,
    each value's probes drawn with replacement from its own probes (the best and worst
    values stay those measured, so the interval can reach below 0: then the order of the
    two groups is not settled). With fewer than two values holding probes, ``gap`` is
    ``None`` and ``reason`` says why.
    """
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, got {confidence}")
    if rounds < 1:
        raise InputError(f"bootstrap rounds must be at least 1, got {rounds}")
    ranks = np.asarray(ranks)
    hits = {v: int((ranks[idx] == 1).sum()) for v, idx in members.items() if len(idx)}
    sizes = {v: len(members[v]) for v in hits}
    empty = [v for v, idx in members.items() if not len(idx)]
    out: dict[str, Any] = {"no_probes": empty}
    if len(hits) < 2:
        out.update(gap=None, ci95=None, reason=f"{len(hits)} group value(s) with probes; need 2")
        return out
    rates = {v: hits[v] / sizes[v] for v in hits}
    best = max(rates, key=lambda v: (rates[v], v))
    worst = min(rates, key=lambda v: (rates[v], v))
    rng = np.random.default_rng(seed)
    # resampling n probes with replacement from n with h hits: hits ~ Binomial(n, h/n)
    boot_best = rng.binomial(sizes[best], rates[best], rounds) / sizes[best]
    boot_worst = rng.binomial(sizes[worst], rates[worst], rounds) / sizes[worst]
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(boot_best - boot_worst, [tail, 100 - tail])
    out.update(
        best=best,
        worst=worst,
        best_rank1=rates[best],
        worst_rank1=rates[worst],
        gap=rates[best] - rates[worst],
        ci=[round(float(lo), 4), round(float(hi), 4)],
        confidence=confidence,
        rounds=rounds,
    )
    return out


def error_rates_at_fmr(
    genuine: np.ndarray,
    impostor_rows: Sequence[np.ndarray],
    members: Mapping[str, np.ndarray],
    threshold: float | None,
) -> dict[str, dict[str, Any]]:
    """FMR and FNMR per group value at ``threshold`` (a match: score strictly above it).

    ``genuine[i]`` is probe ``i``'s true-identity score (``-inf`` for a failed probe: a
    false non-match) and ``impostor_rows[i]`` its impostor scores (none for a failed
    probe). A value without probes gets ``status: "no probes"`` and ``None`` rates; with
    ``threshold`` ``None`` (too few impostors to resolve the FMR), every rate is ``None``.
    """
    out: dict[str, dict[str, Any]] = {}
    for value, idx in members.items():
        comparisons = int(sum(len(impostor_rows[i]) for i in idx))
        row: dict[str, Any] = {"probes": len(idx), "impostor_comparisons": comparisons}
        if not len(idx):
            row.update(fmr=None, fnmr=None, status=NO_PROBES)
        elif threshold is None:
            row.update(fmr=None, fnmr=None)
        else:
            false_matches = int(sum((impostor_rows[i] > threshold).sum() for i in idx))
            row["fmr"] = false_matches / comparisons if comparisons else None
            row["fnmr"] = float(np.mean(genuine[idx] <= threshold))
        out[value] = row
    return out


def group_report(
    scores: np.ndarray,
    truth: np.ndarray,
    ranks: np.ndarray,
    groups: Sequence[Mapping[str, str]],
    *,
    failed: np.ndarray | None = None,
    fmr: float = FMR,
    known: Mapping[str, Sequence[str]] = KNOWN_VALUES,
    rounds: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per group name: ``rank1_gap`` and ``error_rates`` (at the overall ``fmr`` threshold).

    ``scores``/``truth``/``ranks`` as in :func:`facefit.evaluation.metrics.identification_metrics`
    (already collapsed to persons for a person-level report); ``groups[i]`` labels probe
    ``i``. Only group names that label at least one probe are reported; a known value of
    such a group without probes is reported as having none.
    """
    from facefit.evaluation.metrics import far_threshold, genuine_impostor

    scores = np.asarray(scores, np.float64)
    truth = np.asarray(truth, np.int64)
    if len(groups) != len(truth):
        raise InputError(f"{len(groups)} group labels for {len(truth)} probes")
    failed = np.zeros(len(truth), bool) if failed is None else np.asarray(failed, bool)
    genuine, impostor = genuine_impostor(scores, truth, failed)
    threshold = far_threshold(impostor, fmr)
    rows = np.arange(len(truth))
    impostor_rows = [np.zeros(0) if failed[i] else np.delete(scores[i], truth[i]) for i in rows]
    names = sorted({name for labels in groups for name in labels})
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        members = group_members(groups, name, known.get(name, ()))
        out[name] = {
            "rank1_gap": rank1_gap(ranks, members, rounds=rounds, seed=seed),
            "error_rates": {
                "fmr_target": fmr,
                "threshold": None if threshold is None else _finite(threshold),
                "by_value": error_rates_at_fmr(genuine, impostor_rows, members, threshold),
            },
        }
    return out


def _finite(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None
