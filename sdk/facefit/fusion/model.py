"""Fusion profiles, the weights file, and scores → likelihood ratios → probabilities.

See :mod:`facefit.fusion` for the model. The weights file is JSON::

    {"format": "facefit-fusion/1",
     "profiles": [{"encoders": {"sketch": "sketch-matcher", "lq": "sface"},
                   "weights": {"sketch": 14.2, "lq": 3.1},
                   "log_lr_offset": -9.7,
                   "fit": {...how, on what, when...}}],
     "fitted": {...the command, the data's fingerprint...}}

A profile may also depend on the gallery size ``N`` (format ``facefit-fusion/2``, written
only when some profile does; ``/1`` files are read as before)::

    "gallery_size": {"reference": 858, "range": [100, 858],
                     "weights": {"sketch": 1.9, "lq": -2.0}, "log_lr_offset": 0.4}

With ``ℓ = log(N / reference)``, ``ℓ`` held within ``range`` widened by one doubling
each way (:data:`SIZE_EXTRAPOLATION`), the profile's weights at ``N`` are
``max(0, w_k + v_k·ℓ)`` and its offset ``c + c₁·ℓ`` (:meth:`Profile.at_size`).

A profile applies to evidence scored by exactly its sources and encoders; evidence
with more sources uses the largest profile it covers and says which sources went
unweighted (:meth:`FusionModel.fuse`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.files import atomic_write_text

__all__ = [
    "DEFAULT_MATCH_PRIOR",
    "DEFAULT_NO_MATCH_THRESHOLD",
    "DEFAULT_WEIGHTS",
    "FORMAT",
    "FORMATS",
    "FORMAT_SIZED",
    "SOURCES",
    "TEXT_SCORER",
    "FusedScores",
    "FusionModel",
    "Profile",
    "encoder_id",
    "lq_id",
    "probabilities",
]

SOURCES = ("sketch", "lq", "text", "generated")
"""The sources of identity scores, in the order a profile names them."""
FORMAT = "facefit-fusion/1"
FORMAT_SIZED = "facefit-fusion/2"
"""The format of a file with a gallery-size term in some profile (a ``/1`` reader refuses it
rather than silently ignoring the term)."""
FORMATS = (FORMAT, FORMAT_SIZED)
SIZE_EXTRAPOLATION = math.log(2.0)
"""How far (in ``log N``) a gallery-size term reaches beyond the sizes it was fitted on."""
TEXT_SCORER = "attribute-probes/{encoder}"
"""How a profile names the ``text`` source: attribute probes on this encoder's embeddings."""
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "fusion_weights.json"
"""The shipped weights file (fitted on the calibration slice by ``facefit fusion fit``)."""
DEFAULT_MATCH_PRIOR = 0.5
"""Prior probability that the source person is enrolled in the gallery at all. An
investigation rarely knows; 0.5 says "as likely as not". The evaluation harness uses 1.0:
every benchmark probe's person is enrolled."""
DEFAULT_NO_MATCH_THRESHOLD = 0.2
"""A result says *no likely match* when every identity's probability is below this."""


def encoder_id(encoder: Any) -> str:
    """How a profile names the encoder that made a source's scores: its name and version
    (``sface-2021dec``, ``sketch-matcher-be0c3deb62e9205a``), so weights fitted on one
    matcher are never applied to another's scores."""
    name, version = str(encoder.name), str(encoder.version or "")
    if not version or version == "1":
        return name
    return version if version.startswith(name) else f"{name}-{version}"


def lq_id(encoder: Any, side: int | None) -> str:
    """The ``lq`` source's encoder id with the frame's kind: ``sface-2021dec@8px`` for an
    aligned 8×8 crop, ``sface-2021dec@frame`` for a detected camera frame. How much a
    low-quality image says depends on its size, so each size has its own profile."""
    return f"{encoder_id(encoder)}@{f'{side}px' if side else 'frame'}"


def profile_key(encoders: Mapping[str, str]) -> str:
    """``{"sketch": "sketch-matcher", "lq": "sface"}`` → ``"sketch@sketch-matcher+lq@sface"``."""
    return "+".join(f"{s}@{encoders[s]}" for s in SOURCES if s in encoders)


@dataclass(frozen=True)
class Profile:
    """Weights and calibration for one combination of sources (see the module doc)."""

    encoders: dict[str, str]
    """Source → the encoder (or scorer) its scores came from."""
    weights: dict[str, float]
    """Source → weight in the raw fused score (non-negative)."""
    log_lr_offset: float
    """``log LR = raw + log_lr_offset``."""
    fit: dict[str, Any] = field(default_factory=dict, compare=False)
    """How it was fitted: data, pairs, losses, command (for the record only)."""
    size_reference: float | None = None
    """Gallery size at which :attr:`weights` and :attr:`log_lr_offset` hold; None: the
    profile does not depend on the gallery size (every ``/1`` file)."""
    size_weights: dict[str, float] = field(default_factory=dict)
    """Source → change of its weight per unit of ``log(N / size_reference)``."""
    size_offset: float = 0.0
    """Change of the offset per unit of ``log(N / size_reference)``."""
    size_range: tuple[float, float] | None = None
    """Smallest and largest gallery sizes the size term was fitted on."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.encoders) - set(SOURCES))
        if unknown or set(self.weights) != set(self.encoders):
            raise InputError(
                f"fusion profile {self.encoders}: sources must be among {', '.join(SOURCES)} "
                f"and every source needs one weight (got weights for {sorted(self.weights)})"
            )
        if any(not math.isfinite(w) or w < 0 for w in self.weights.values()):
            raise InputError(f"fusion profile {self.key}: weights must be finite and >= 0")
        if self.size_reference is not None:
            lo, hi = self.size_range or (self.size_reference, self.size_reference)
            values = [*self.size_weights.values(), self.size_offset]
            if (
                not set(self.size_weights) <= set(self.weights)
                or not all(math.isfinite(v) for v in values)
                or not 1 <= lo <= hi
                or not self.size_reference >= 1
            ):
                raise InputError(
                    f"fusion profile {self.key}: a malformed gallery-size term (size weights "
                    "for its own sources, finite, sizes >= 1)"
                )

    @property
    def sized(self) -> bool:
        """Whether the weights depend on the gallery size."""
        return self.size_reference is not None

    def at_size(self, n: int | None) -> tuple[dict[str, float], float]:
        """The weights (each ``>= 0``) and offset for a gallery of ``n`` identities."""
        if self.size_reference is None or not n:
            return dict(self.weights), self.log_lr_offset
        lo, hi = self.size_range or (self.size_reference, self.size_reference)
        ell = min(
            max(
                math.log(n / self.size_reference),
                math.log(lo / self.size_reference) - SIZE_EXTRAPOLATION,
            ),
            math.log(hi / self.size_reference) + SIZE_EXTRAPOLATION,
        )
        weights = {
            s: max(0.0, w + self.size_weights.get(s, 0.0) * ell) for s, w in self.weights.items()
        }
        return weights, self.log_lr_offset + self.size_offset * ell

    @property
    def key(self) -> str:
        return profile_key(self.encoders)

    def scored(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """Which identities every source of the profile scored (their count is ``N``)."""
        return np.all([np.isfinite(np.asarray(scores[s], np.float64)) for s in self.weights], 0)

    def raw(self, scores: Mapping[str, np.ndarray], n: int | None = None) -> np.ndarray:
        """The raw fused score per identity; ``-inf`` where any weighted source is ``-inf``.

        ``n``: the gallery size the weights are taken at (default: the identities
        scored); it matters only for a profile with a gallery-size term.
        """
        if n is None and self.sized:
            n = int(self.scored(scores).sum())
        weights, _ = self.at_size(n)
        total = None
        for source, weight in weights.items():
            values = np.asarray(scores[source], dtype=np.float64)
            term = np.where(np.isfinite(values), weight * values, -np.inf)
            total = term if total is None else total + term
        assert total is not None
        return total

    def log_lr(self, scores: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Raw fused scores and log likelihood ratios of one probe's identities."""
        n = int(self.scored(scores).sum())
        raw = self.raw(scores, n)
        return raw, raw + self.at_size(n)[1]

    def to_dict(self) -> dict[str, Any]:
        ordered = [s for s in SOURCES if s in self.encoders]
        out: dict[str, Any] = {
            "key": self.key,
            "encoders": {s: self.encoders[s] for s in ordered},
            "weights": {s: round(float(self.weights[s]), 6) for s in ordered},
            "log_lr_offset": round(float(self.log_lr_offset), 6),
        }
        if self.size_reference is not None:
            lo, hi = self.size_range or (self.size_reference, self.size_reference)
            out["gallery_size"] = {
                "reference": self.size_reference,
                "range": [lo, hi],
                "weights": {s: round(float(self.size_weights.get(s, 0.0)), 6) for s in ordered},
                "log_lr_offset": round(float(self.size_offset), 6),
            }
        out["fit"] = self.fit
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Profile:
        try:
            size = data.get("gallery_size")
            sized: dict[str, Any] = {}
            if size is not None:
                lo, hi = size["range"]
                sized = {
                    "size_reference": float(size["reference"]),
                    "size_weights": {str(k): float(v) for k, v in size["weights"].items()},
                    "size_offset": float(size.get("log_lr_offset", 0.0)),
                    "size_range": (float(lo), float(hi)),
                }
            return cls(
                {str(k): str(v) for k, v in data["encoders"].items()},
                {str(k): float(v) for k, v in data["weights"].items()},
                float(data["log_lr_offset"]),
                dict(data.get("fit", {})),
                **sized,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{where}: a fusion profile is malformed ({exc!r})") from None


def probabilities(log_lr: np.ndarray, prior: float) -> np.ndarray:
    """Per identity, the probability that it is the source (see :mod:`facefit.fusion`).

    ``log_lr`` holds one log likelihood ratio per gallery identity (``-inf``: not
    scored, probability 0); ``prior`` is the probability that the source is enrolled.
    Monotone in each identity's own ``log_lr``.
    """
    if not 0.0 < prior <= 1.0:
        raise InputError(f"match prior must be in (0, 1], got {prior}")
    log_lr = np.asarray(log_lr, dtype=np.float64)
    finite = np.isfinite(log_lr)
    out = np.zeros_like(log_lr)
    n = int(finite.sum())
    if n == 0:
        return out
    # log of (π/N)·LR_j and of the normalizer (1 − π) + (π/N)·Σ LR, kept in log space
    weighted = log_lr[finite] + math.log(prior / n)
    terms = np.append(weighted, math.log1p(-prior) if prior < 1.0 else -np.inf)
    top = float(terms.max())
    normalizer = top + math.log(float(np.exp(terms - top).sum()))
    out[finite] = np.exp(weighted - normalizer)
    return out


@dataclass(frozen=True)
class FusedScores:
    """One probe's fused identity scores (gallery order), with how they were made."""

    raw: np.ndarray
    """Raw fused score per identity (what ranks them)."""
    probability: np.ndarray | None
    """Calibrated probability per identity that it is the source; None without a profile."""
    profile: str | None
    """The profile used (:func:`profile_key`), None when uncalibrated."""
    notes: tuple[str, ...] = ()


class FusionModel:
    """The fitted profiles of a weights file (see the module doc)."""

    def __init__(
        self, profiles: list[Profile], meta: dict[str, Any] | None = None, path: Path | None = None
    ) -> None:
        self.profiles = {p.key: p for p in profiles}
        if len(self.profiles) != len(profiles):
            raise InputError("fusion weights: two profiles for the same sources and encoders")
        self.meta = dict(meta or {})
        self.path = path

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> FusionModel:
        """Read a weights file (default: the shipped :data:`DEFAULT_WEIGHTS`)."""
        path = Path(path) if path is not None else DEFAULT_WEIGHTS
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(
                f"{path}: no fusion weights; fit them with `facefit fusion fit DATA --out {path}`"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read fusion weights ({exc})") from None
        if not isinstance(data, dict) or data.get("format") not in FORMATS:
            raise InputError(f"{path}: not a facefit fusion weights file ({' or '.join(FORMATS)})")
        profiles = [Profile.from_dict(p, str(path)) for p in data.get("profiles", [])]
        return cls(profiles, data.get("fitted", {}), path)

    def to_dict(self) -> dict[str, Any]:
        sized = any(p.sized for p in self.profiles.values())
        return {
            "format": FORMAT_SIZED if sized else FORMAT,
            "fitted": self.meta,
            "profiles": [self.profiles[k].to_dict() for k in sorted(self.profiles)],
        }

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the weights file atomically; an existing file is replaced only with ``force``."""
        path = Path(path)
        if path.exists() and not force:
            raise InputError(f"{path}: exists; choose another --out, or pass --force to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def profile_for(self, encoders: Mapping[str, str]) -> tuple[Profile | None, tuple[str, ...]]:
        """The profile for evidence scored by ``encoders`` (source → encoder), and notes.

        The exact profile when there is one; else the fitted profile with the most
        sources among those present (each with the same encoder), noting the sources
        it leaves unweighted; else None.
        """
        exact = self.profiles.get(profile_key(encoders))
        if exact is not None:
            return exact, ()
        covered = [
            p
            for p in self.profiles.values()
            if all(encoders.get(s) == e for s, e in p.encoders.items())
        ]
        if not covered:
            return None, (
                f"fusion: no fitted profile for {profile_key(encoders)}; identities are "
                "ranked by uncalibrated scores (refit with `facefit fusion fit`)",
            )
        best = max(covered, key=lambda p: (len(p.encoders), p.key))
        left = [s for s in SOURCES if s in encoders and s not in best.encoders]
        return best, (
            f"fusion: no fitted weight for {', '.join(left)} with these encoders; ranked by "
            f"profile {best.key} alone (refit with `facefit fusion fit` to weight them)",
        )

    def fuse(
        self,
        scores: Mapping[str, np.ndarray],
        encoders: Mapping[str, str],
        *,
        prior: float = DEFAULT_MATCH_PRIOR,
    ) -> FusedScores:
        """Fuse one probe's per-source identity scores (all in the same gallery order).

        Without a fitted profile the raw score is the generated candidates' score when
        there is one, else the mean of the sources, and no probability is given.
        """
        if set(scores) != set(encoders) or not scores:
            raise InputError(
                f"fusion: scores for {sorted(scores)} but encoders for {sorted(encoders)}"
            )
        profile, notes = self.profile_for(encoders)
        if profile is None:
            if "generated" in scores:
                raw = np.asarray(scores["generated"], dtype=np.float64)
            else:
                raw = np.mean([np.asarray(v, np.float64) for v in scores.values()], axis=0)
            return FusedScores(raw, None, None, notes)
        raw, log_lr = profile.log_lr(scores)
        return FusedScores(raw, probabilities(log_lr, prior), profile.key, notes)
