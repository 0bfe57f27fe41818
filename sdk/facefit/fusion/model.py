"""Fusion profiles, the weights file, and scores → likelihood ratios → probabilities.

See :mod:`facefit.fusion` for the model. The weights file is JSON::

    {"format": "facefit-fusion/1",
     "profiles": [{"encoders": {"sketch": "sketch-matcher", "lq": "sface"},
                   "weights": {"sketch": 14.2, "lq": 3.1},
                   "log_lr_offset": -9.7,
                   "fit": {...how, on what, when...}}],
     "fitted": {...the command, the data's fingerprint...}}

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
    name, version = str(encoder.name), str(getattr(encoder, "version", "") or "")
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

    def __post_init__(self) -> None:
        unknown = sorted(set(self.encoders) - set(SOURCES))
        if unknown or set(self.weights) != set(self.encoders):
            raise InputError(
                f"fusion profile {self.encoders}: sources must be among {', '.join(SOURCES)} "
                f"and every source needs one weight (got weights for {sorted(self.weights)})"
            )
        if any(not math.isfinite(w) or w < 0 for w in self.weights.values()):
            raise InputError(f"fusion profile {self.key}: weights must be finite and >= 0")

    @property
    def key(self) -> str:
        return profile_key(self.encoders)

    def raw(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """The raw fused score per identity; ``-inf`` where any weighted source is ``-inf``."""
        total = None
        for source, weight in self.weights.items():
            values = np.asarray(scores[source], dtype=np.float64)
            term = np.where(np.isfinite(values), weight * values, -np.inf)
            total = term if total is None else total + term
        assert total is not None
        return total

    def to_dict(self) -> dict[str, Any]:
        ordered = [s for s in SOURCES if s in self.encoders]
        return {
            "key": self.key,
            "encoders": {s: self.encoders[s] for s in ordered},
            "weights": {s: round(float(self.weights[s]), 6) for s in ordered},
            "log_lr_offset": round(float(self.log_lr_offset), 6),
            "fit": self.fit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Profile:
        try:
            return cls(
                {str(k): str(v) for k, v in data["encoders"].items()},
                {str(k): float(v) for k, v in data["weights"].items()},
                float(data["log_lr_offset"]),
                dict(data.get("fit", {})),
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
    # log of (π/N)·LR_j and of the normaliser (1 − π) + (π/N)·Σ LR, kept in log space
    weighted = log_lr[finite] + math.log(prior / n)
    terms = np.append(weighted, math.log1p(-prior) if prior < 1.0 else -np.inf)
    top = float(terms.max())
    normaliser = top + math.log(float(np.exp(terms - top).sum()))
    out[finite] = np.exp(weighted - normaliser)
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
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{path}: not a facefit fusion weights file ({FORMAT})")
        profiles = [Profile.from_dict(p, str(path)) for p in data.get("profiles", [])]
        return cls(profiles, data.get("fitted", {}), path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
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
        raw = profile.raw(scores)
        return FusedScores(
            raw, probabilities(raw + profile.log_lr_offset, prior), profile.key, notes
        )
