"""Fitting a fusion profile: the weights by conditional likelihood, the offset by normalisation.

Each calibration probe scores every gallery identity by each source; an identity is a
match when it shows the probe's person (FS2K holds several photos of one person under
separate ids, and each is a true match).

- **Weights** ``w`` maximise the probability the fused scores give the probe's person
  when it is enrolled: ``Σ_probes log Σ_{j match} softmax(s)_j`` with ``s_j = w·x_j``
  (a conditional logit, L2-penalised). This is the quantity a ranking and its top-1
  probability rest on, so the closed-set probabilities are calibrated by construction
  of the fit. Newton's method from zeros: no randomness, the same data give the same
  weights. A source whose weight comes out negative (it ranks the wrong way on this
  data) is dropped and the rest refitted, so a profile never ranks an identity *down*
  for looking like the evidence.
- **Offset** ``c`` makes ``exp(s + c)`` a likelihood ratio: over non-matching pairs a
  likelihood ratio averages 1, so ``c = −log mean_{non-matches} exp(s)``. Only the
  open-set probability (match prior below 1) depends on it.

``seed`` only orders the persons into cross-validation folds, whose held-out
negative log likelihood and top-1 calibration error are recorded with the profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from facefit.errors import InputError
from facefit.fusion.model import SOURCES, Profile, probabilities

__all__ = ["FitSample", "fit_conditional_logit", "fit_profile"]

L2 = 1e-5
"""Penalty on the weights, per probe: keeps a separable fit finite."""


@dataclass(frozen=True)
class FitSample:
    """One calibration probe: per-source scores of every gallery identity, and the truth."""

    scores: Mapping[str, np.ndarray]
    positive: np.ndarray
    """Per identity, whether it shows the probe's person."""
    person: str


def _blocks(samples: Sequence[FitSample], sources: Sequence[str]) -> list[tuple]:
    """Per probe: its ``(identities, sources)`` scores (finite rows) and match mask."""
    out = []
    for sample in samples:
        block = np.stack([np.asarray(sample.scores[s], np.float64) for s in sources], axis=1)
        keep = np.isfinite(block).all(axis=1)
        positive = np.asarray(sample.positive, bool)[keep]
        if positive.any():
            out.append((block[keep], positive))
    if not out:
        raise InputError("fusion fit: no probe has its person among the scored identities")
    return out


def _softmax_moments(x: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """log Σ exp(s), and the softmax mean and covariance of the rows of ``x``."""
    top = float(s.max())
    e = np.exp(s - top)
    total = float(e.sum())
    p = e / total
    mean = p @ x
    centred = x - mean
    return top + math.log(total), mean, (centred * p[:, None]).T @ centred


def _objective(
    w: np.ndarray, blocks: list[tuple], l2: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """Negative log likelihood of the matches, its gradient and Hessian (see the module doc)."""
    d = len(w)
    value, gradient, hessian = 0.0, np.zeros(d), np.zeros((d, d))
    for x, positive in blocks:
        s = x @ w
        lse_all, mean_all, cov_all = _softmax_moments(x, s)
        lse_pos, mean_pos, cov_pos = _softmax_moments(x[positive], s[positive])
        value += lse_all - lse_pos
        gradient += mean_all - mean_pos
        hessian += cov_all - cov_pos
    n = len(blocks)
    value += l2 * n * float(w @ w)
    gradient += 2 * l2 * n * w
    hessian += 2 * l2 * n * np.eye(d)
    return value, gradient, hessian


def fit_conditional_logit(
    blocks: list[tuple], *, l2: float = L2, iterations: int = 100
) -> np.ndarray:
    """Weights maximising the matches' softmax probability (Newton, backtracking)."""
    w = np.zeros(blocks[0][0].shape[1])
    value, gradient, hessian = _objective(w, blocks, l2)
    for _ in range(iterations):
        try:
            step = np.linalg.solve(hessian, gradient)
            if float(step @ gradient) <= 0:  # not a descent direction: fall back to the gradient
                step = gradient
        except np.linalg.LinAlgError:
            step = gradient
        size = 1.0
        while size > 1e-8:
            trial = w - size * step
            new = _objective(trial, blocks, l2)
            if new[0] <= value - 1e-4 * size * float(step @ gradient):
                break
            size /= 2
        else:
            break
        w, (value, gradient, hessian) = trial, new
        if float(np.abs(size * step).max()) < 1e-9:
            break
    return w


def _lr_offset(blocks: list[tuple], w: np.ndarray) -> float:
    """``c`` with mean over non-matching pairs of ``exp(s + c)`` equal to 1."""
    s = np.concatenate([x[~positive] @ w for x, positive in blocks])
    if s.size == 0:
        raise InputError("fusion fit: the gallery needs identities that do not match")
    top = float(s.max())
    return -(top + math.log(float(np.exp(s - top).mean())))


def _fit(samples: Sequence[FitSample], sources: Sequence[str], l2: float) -> tuple[dict, float]:
    """Non-negative weights (dropping sources that come out negative) and the LR offset."""
    active = list(sources)
    while True:
        blocks = _blocks(samples, active)
        weights = fit_conditional_logit(blocks, l2=l2)
        negative = [s for s, w in zip(active, weights, strict=True) if w < 0]
        if not negative or len(active) == 1:
            break
        active = [s for s in active if s not in negative]
    found = {s: max(0.0, float(w)) for s, w in zip(active, weights, strict=True)}
    out = {s: found.get(s, 0.0) for s in sources}
    return out, _lr_offset(_blocks(samples, list(sources)), np.array([out[s] for s in sources]))


def _held_out(
    samples: Sequence[FitSample], weights: Mapping[str, float], offset: float
) -> tuple[list[float], list[float], list[bool]]:
    """Per probe, with its person enrolled (match prior 1): the negative log probability of
    the person, and the top-1 person's probability and whether it is right."""
    losses, confidence, correct = [], [], []
    for sample in samples:
        raw = sum(w * np.asarray(sample.scores[s], np.float64) for s, w in weights.items())
        finite = np.isfinite(raw)
        p = probabilities(np.where(finite, raw + offset, -np.inf), 1.0)
        positive = np.asarray(sample.positive, bool)
        losses.append(-math.log(max(float(p[positive].sum()), 1e-300)))
        top = int(np.argmax(np.where(finite, raw, -np.inf)))
        # the probability of the top *person*: every photo of the same person counts
        confidence.append(min(1.0, float(p[positive].sum() if positive[top] else p[top])))
        correct.append(bool(positive[top]))
    return losses, confidence, correct


def _summary(rows: tuple[list[float], list[float], list[bool]]) -> tuple[float, float]:
    from facefit.evaluation.calibration import expected_calibration_error

    losses, confidence, correct = rows
    return float(np.mean(losses)), expected_calibration_error(confidence, correct)


def fit_profile(
    samples: Sequence[FitSample],
    encoders: Mapping[str, str],
    *,
    l2: float = L2,
    folds: int = 5,
    seed: int = 0,
    fit_info: Mapping | None = None,
) -> Profile:
    """Fit a :class:`~facefit.fusion.Profile` on calibration ``samples`` (see the module doc)."""
    sources = [s for s in SOURCES if s in encoders]
    if not samples:
        raise InputError("fusion fit: no calibration probes")
    missing = [s for s in sources if any(s not in x.scores for x in samples)]
    if missing:
        raise InputError(f"fusion fit: some probes have no {', '.join(missing)} scores")
    weights, offset = _fit(samples, sources, l2)
    persons = sorted({s.person for s in samples})
    order = np.random.default_rng(seed).permutation(len(persons))
    fold_of = {persons[i]: n % folds for n, i in enumerate(order)}
    held: tuple[list, list, list] = ([], [], [])
    for fold in range(min(folds, len(persons))):
        train = [s for s in samples if fold_of[s.person] != fold]
        test = [s for s in samples if fold_of[s.person] == fold]
        if not test or not train:
            continue
        for pooled, rows in zip(held, _held_out(test, *_fit(train, sources, l2)), strict=True):
            pooled.extend(rows)
    loss, ece = _summary(_held_out(samples, weights, offset))
    cv_loss, cv_ece = _summary(held) if held[0] else (float("nan"), float("nan"))
    info = {
        **dict(fit_info or {}),
        "probes": len(samples),
        "persons": len(persons),
        "pairs": int(sum(int(np.isfinite(next(iter(s.scores.values()))).sum()) for s in samples)),
        "l2": l2,
        "seed": seed,
        "folds": folds,
        "train_nll": round(loss, 5),
        "train_top1_ece": round(ece, 4),
        "cv_nll": round(cv_loss, 5),
        "cv_top1_ece": round(cv_ece, 4),
        "cv_top1_accuracy": round(float(np.mean(held[2])), 4) if held[2] else None,
        "cv_mean_top1_probability": round(float(np.mean(held[1])), 4) if held[1] else None,
        "dropped": [s for s in sources if weights[s] == 0.0],
    }
    return Profile(dict(encoders), weights, offset, info)
