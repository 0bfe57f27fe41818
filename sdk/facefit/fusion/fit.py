"""Fitting a fusion profile: the weights by conditional likelihood, the offset by normalization.

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

**Gallery size.** A probability that an identity is the source depends on how many
identities compete. When the samples come from galleries of several sizes
(:func:`gallery_size_samples`: the calibration photos plus random subsets of the
distractors; each sample's ``N`` is the number of identities it scores), ``size_model``
lets the profile depend on ``ℓ = log(N / N_ref)`` (``N_ref``: the largest size):

- ``"fixed"``: no size term (every profile before, and the default);
- ``"temperature"``: one factor on all weights, ``w_k·(1 + β·ℓ)`` — sharper or
  flatter probabilities as the gallery grows, the ranking within a gallery unchanged;
- ``"per-source"``: each weight its own slope, ``w_k + v_k·ℓ`` (a source that tells a few
  people apart but not hundreds can lose weight as ``N`` grows).

The conditional logit is fitted on the pooled samples (for ``temperature`` by a
one-dimensional search over ``β``), and the offset at each size is fitted as above and
regressed on ``ℓ``. Which model ships is chosen by cross-validation on the calibration
slice (benchmarks/fusion_gallery_size.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from facefit.errors import InputError
from facefit.fusion.model import SOURCES, Profile, probabilities

__all__ = [
    "SIZE_MODELS",
    "FitSample",
    "fit_conditional_logit",
    "fit_profile",
    "gallery_size_columns",
    "gallery_size_samples",
]

L2 = 1e-5
"""Penalty on the weights, per probe: keeps a separable fit finite."""
SIZE_MODELS = ("fixed", "temperature", "per-source")
"""How a profile may depend on the gallery size (see the module doc)."""


@dataclass(frozen=True)
class FitSample:
    """One calibration probe: per-source scores of every gallery identity, and the truth."""

    scores: Mapping[str, np.ndarray]
    positive: np.ndarray
    """Per identity, whether it shows the probe's person."""
    person: str


def _blocks(samples: Sequence[FitSample], sources: Sequence[str]) -> list[tuple]:
    """Per probe: its ``(identities, sources)`` scores (finite rows), match mask and ``N``."""
    out = []
    for sample in samples:
        block = np.stack([np.asarray(sample.scores[s], np.float64) for s in sources], axis=1)
        keep = np.isfinite(block).all(axis=1)
        positive = np.asarray(sample.positive, bool)[keep]
        if positive.any():
            out.append((block[keep], positive, int(keep.sum())))
    if not out:
        raise InputError("fusion fit: no probe has its person among the scored identities")
    return out


def gallery_size_columns(
    core: np.ndarray, sizes: Sequence[int], count: int, *, seed: int = 0
) -> list[list[np.ndarray]]:
    """Per sample (``count``), per size: the identities (column indices) of its gallery —
    the ``core`` identities (the calibration photos, every probe's own among them) plus a
    random subset of the others (the distractors), ``size`` in all; a size at or above the
    whole gallery is the whole gallery. Each sample and size draws its own subset;
    deterministic for a ``seed``."""
    core = np.asarray(core, bool)
    rng = np.random.default_rng(seed)
    inner, others = np.flatnonzero(core), np.flatnonzero(~core)
    out = []
    for _ in range(count):
        row = []
        for size in sizes:
            extra = int(size) - inner.size
            if extra < 0:
                raise InputError(
                    f"fusion fit: gallery size {size} is below the {inner.size} calibration photos"
                )
            if extra >= others.size:
                row.append(np.arange(core.size))
            else:
                drawn = rng.choice(others, size=extra, replace=False)
                row.append(np.sort(np.concatenate([inner, drawn])))
        out.append(row)
    return out


def gallery_size_samples(
    samples: Sequence[FitSample],
    core: np.ndarray,
    sizes: Sequence[int],
    *,
    seed: int = 0,
) -> list[FitSample]:
    """Each sample once per gallery size (:func:`gallery_size_columns`), in that order."""
    out = []
    for sample, row in zip(
        samples, gallery_size_columns(core, sizes, len(samples), seed=seed), strict=True
    ):
        for columns in row:
            out.append(
                FitSample(
                    {k: np.asarray(v)[columns] for k, v in sample.scores.items()},
                    np.asarray(sample.positive, bool)[columns],
                    sample.person,
                )
            )
    return out


def _groups(blocks: list[tuple]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The blocks stacked by shape, ``(probes, identities, features)`` and the match masks,
    so the objective is a few array operations instead of a loop over probes."""
    by_shape: dict[tuple, list] = {}
    for x, positive, *_ in blocks:
        by_shape.setdefault(x.shape, []).append((x, positive))
    return [
        (np.stack([x for x, _ in group]), np.stack([p for _, p in group]))
        for group in by_shape.values()
    ]


def _masked_moments(
    x: np.ndarray, s: np.ndarray, mask: np.ndarray | None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Summed over probes: log Σ exp(s) over the (masked) identities, and the softmax
    mean and covariance of their rows of ``x``."""
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    top = s.max(axis=1, keepdims=True)
    e = np.exp(s - top)
    total = e.sum(axis=1, keepdims=True)
    p = e / total
    mean = np.einsum("bn,bnd->bd", p, x)
    second = np.einsum("bn,bnd,bne->de", p, x, x)
    lse = float((top[:, 0] + np.log(total[:, 0])).sum())
    return lse, mean.sum(axis=0), second - mean.T @ mean


def _objective(
    w: np.ndarray, blocks: list[tuple], l2: float, groups: list | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Negative log likelihood of the matches, its gradient and Hessian (see the module doc)."""
    d = len(w)
    value, gradient, hessian = 0.0, np.zeros(d), np.zeros((d, d))
    for x, positive in groups if groups is not None else _groups(blocks):
        s = x @ w
        lse_all, mean_all, cov_all = _masked_moments(x, s, None)
        lse_pos, mean_pos, cov_pos = _masked_moments(x, s, positive)
        value += lse_all - lse_pos
        gradient += mean_all - mean_pos
        hessian += cov_all - cov_pos
    n = len(blocks)
    value += l2 * n * float(w @ w)
    gradient += 2 * l2 * n * w
    hessian += 2 * l2 * n * np.eye(d)
    return value, gradient, hessian


def fit_conditional_logit(
    blocks: list[tuple], *, l2: float = L2, iterations: int = 100, start: np.ndarray | None = None
) -> np.ndarray:
    """Weights maximising the matches' softmax probability (Newton, backtracking; from
    zeros, or from ``start``: the optimum is unique, only the steps to it differ)."""
    w = np.zeros(blocks[0][0].shape[1]) if start is None else np.array(start, np.float64)
    groups = _groups(blocks)
    value, gradient, hessian = _objective(w, blocks, l2, groups)
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
            new = _objective(trial, blocks, l2, groups)
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
    s = np.concatenate([x[~positive] @ w for x, positive, *_ in blocks])
    if s.size == 0:
        raise InputError("fusion fit: the gallery needs identities that do not match")
    top = float(s.max())
    return -(top + math.log(float(np.exp(s - top).mean())))


def _design(blocks: list[tuple], size_model: str, ell0: float, beta: float = 0.0) -> list:
    """The blocks' features for a size model: ``x`` (fixed), ``x·(1 + β·ℓ)`` (temperature)
    or ``[x, x·ℓ]`` (per-source), with ``ℓ = log N − ell0``."""
    out = []
    for x, positive, n in blocks:
        ell = math.log(n) - ell0
        if size_model == "temperature":
            out.append((x * max(0.0, 1.0 + beta * ell), positive))
        elif size_model == "per-source":
            out.append((np.concatenate([x, x * ell], axis=1), positive))
        else:
            out.append((x, positive))
    return out


def _nll(blocks: list, w: np.ndarray) -> float:
    return _objective(w, blocks, 0.0)[0]


def _golden(f, lo: float, hi: float, iterations: int = 24) -> float:
    """The minimiser of a unimodal ``f`` on ``[lo, hi]`` (golden-section search)."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iterations):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2


@dataclass(frozen=True)
class _Fitted:
    """A fit's parameters: base weights and offset at ``reference`` and their size slopes."""

    weights: dict[str, float]
    offset: float
    reference: float | None = None
    slopes: dict[str, float] | None = None
    offset_slope: float = 0.0
    size_range: tuple[float, float] | None = None
    beta: float | None = None

    def profile(self, encoders: Mapping[str, str], info: dict) -> Profile:
        if self.reference is None:
            return Profile(dict(encoders), self.weights, self.offset, info)
        return Profile(
            dict(encoders),
            self.weights,
            self.offset,
            info,
            size_reference=self.reference,
            size_weights=dict(self.slopes or {}),
            size_offset=self.offset_slope,
            size_range=self.size_range,
        )


def _fit_weights(
    blocks: list[tuple], size_model: str, ell0: float, l2: float, span: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Base weights, per-source slopes and (temperature) β for one set of sources."""
    d = blocks[0][0].shape[1]
    if size_model == "per-source":
        w = fit_conditional_logit(_design(blocks, size_model, ell0), l2=l2)
        return w[:d], w[d:], None
    if size_model == "temperature":
        lo_ell, hi_ell = span
        # 1 + β·ℓ stays >= 0.1 over the fitted sizes: β in [-0.9 / hi_ell, 0.9 / -lo_ell]
        lo = -0.9 / hi_ell if hi_ell > 0 else -5.0
        hi = 0.9 / -lo_ell if lo_ell < 0 else 5.0

        start = fit_conditional_logit(blocks, l2=l2)

        def loss(beta: float) -> float:
            design = _design(blocks, size_model, ell0, beta)
            return _nll(design, fit_conditional_logit(design, l2=l2, start=start))

        beta = _golden(loss, max(lo, -5.0), min(hi, 5.0)) if hi_ell > lo_ell else 0.0
        w = fit_conditional_logit(_design(blocks, size_model, ell0, beta), l2=l2, start=start)
        return w, beta * w, beta
    return fit_conditional_logit(blocks, l2=l2), np.zeros(d), None


def _fit(
    samples: Sequence[FitSample], sources: Sequence[str], l2: float, size_model: str = "fixed"
) -> _Fitted:
    """Non-negative weights (dropping sources that come out negative), the size term of
    ``size_model`` and the LR offset (see the module doc)."""
    if size_model not in SIZE_MODELS:
        raise InputError(f"fusion fit: size model must be one of {', '.join(SIZE_MODELS)}")
    sizes = sorted({n for *_, n in _blocks(samples, list(sources))})
    if size_model != "fixed" and len(sizes) < 2:
        raise InputError(
            f"fusion fit: a {size_model} size model needs samples from galleries of at least "
            "two sizes (gallery_size_samples)"
        )
    ell0 = math.log(sizes[-1])
    span = (math.log(sizes[0]) - ell0, 0.0)
    active = list(sources)
    while True:
        blocks = _blocks(samples, active)
        weights, slopes, beta = _fit_weights(blocks, size_model, ell0, l2, span)
        negative = [s for s, w in zip(active, weights, strict=True) if w < 0]
        if not negative or len(active) == 1:
            break
        active = [s for s in active if s not in negative]
    found = {s: max(0.0, float(w)) for s, w in zip(active, weights, strict=True)}
    base = {s: found.get(s, 0.0) for s in sources}
    all_blocks = _blocks(samples, list(sources))
    if size_model == "fixed":
        w = np.array([base[s] for s in sources])
        return _Fitted(base, _lr_offset(all_blocks, w))
    slope = {s: 0.0 for s in sources}
    slope.update({s: float(v) for s, v in zip(active, slopes, strict=True) if s in found})
    fitted = _Fitted(
        base, 0.0, float(sizes[-1]), slope, 0.0, (float(sizes[0]), float(sizes[-1])), beta
    )
    # the offset at each fitted size, then a line in ℓ through them (least squares)
    profile = fitted.profile({s: s for s in sources}, {})
    ells, offsets, counts = [], [], []
    for size in sizes:
        group = [b for b in all_blocks if b[2] == size]
        weights_n, _ = profile.at_size(size)
        w = np.array([weights_n[s] for s in sources])
        ells.append(math.log(size) - ell0)
        offsets.append(_lr_offset(group, w))
        counts.append(len(group))
    c1, c0 = np.polyfit(ells, offsets, 1, w=np.sqrt(counts))
    return _Fitted(base, float(c0), fitted.reference, slope, float(c1), fitted.size_range, beta)


def _held_out(
    samples: Sequence[FitSample], profile: Profile
) -> tuple[list[float], list[float], list[bool]]:
    """Per probe, with its person enrolled (match prior 1): the negative log probability of
    the person, and the top-1 person's probability and whether it is right."""
    losses, confidence, correct = [], [], []
    for sample in samples:
        scores = {s: np.asarray(sample.scores[s], np.float64) for s in profile.weights}
        raw, log_lr = profile.log_lr(scores)
        finite = np.isfinite(raw)
        p = probabilities(log_lr, 1.0)
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
    size_model: str = "fixed",
) -> Profile:
    """Fit a :class:`~facefit.fusion.Profile` on calibration ``samples`` (see the module doc).

    ``size_model`` (:data:`SIZE_MODELS`): whether and how the profile depends on the
    gallery size; other than ``"fixed"`` it needs samples from galleries of several sizes.
    """
    sources = [s for s in SOURCES if s in encoders]
    if not samples:
        raise InputError("fusion fit: no calibration probes")
    missing = [s for s in sources if any(s not in x.scores for x in samples)]
    if missing:
        raise InputError(f"fusion fit: some probes have no {', '.join(missing)} scores")
    fitted = _fit(samples, sources, l2, size_model)
    profile = fitted.profile(encoders, {})
    persons = sorted({s.person for s in samples})
    order = np.random.default_rng(seed).permutation(len(persons))
    fold_of = {persons[i]: n % folds for n, i in enumerate(order)}
    held: tuple[list, list, list] = ([], [], [])
    for fold in range(min(folds, len(persons))):
        train = [s for s in samples if fold_of[s.person] != fold]
        test = [s for s in samples if fold_of[s.person] == fold]
        if not test or not train:
            continue
        fold_profile = _fit(train, sources, l2, size_model).profile(encoders, {})
        for pooled, rows in zip(held, _held_out(test, fold_profile), strict=True):
            pooled.extend(rows)
    loss, ece = _summary(_held_out(samples, profile))
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
        "dropped": [s for s in sources if fitted.weights[s] == 0.0],
    }
    if size_model != "fixed":
        sizes = sorted({n for *_, n in _blocks(samples, sources)})
        info["size_model"] = size_model
        info["gallery_sizes"] = sizes
        if fitted.beta is not None:
            info["temperature_slope"] = round(fitted.beta, 6)
    return fitted.profile(encoders, info)
