"""Values passed between the SDK's parts.

All are frozen dataclasses. Image arrays are copied and made read-only on the way
in, so a value handed to a plugin cannot be changed behind the caller's back.

Image convention: ``numpy.ndarray`` of ``uint8``, shape ``(H, W, 3)`` in RGB order,
or ``(H, W)`` for grey sketches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.errors import InputError

if TYPE_CHECKING:  # torch is imported lazily: the SDK's types must stay light
    import torch

MODALITIES = ("sketch", "lq", "text", "reference")
"""Kinds of evidence, in the order the generator sees them."""


def _frozen_image(value: Any, what: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value)
    if array.dtype != np.uint8:
        raise InputError(f"{what}: expected a uint8 image array, got dtype {array.dtype}")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise InputError(f"{what}: expected shape (H, W) or (H, W, 3), got {array.shape}")
    if min(array.shape[:2]) < 1:
        raise InputError(f"{what}: image is empty (shape {array.shape})")
    array = array.copy()
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class Evidence:
    """What an investigation has: any non-empty subset of the modalities.

    ``sketch`` is a drawing of the face (grey or RGB); ``lq`` a low-quality photo
    (a small or blurred camera frame); ``text`` a description in words;
    ``reference`` a face photo that stands for an identity (a gallery face or a
    candidate the investigator picked). ``sources`` maps a modality to the file it
    came from, for provenance.
    """

    sketch: np.ndarray | None = None
    lq: np.ndarray | None = None
    text: str | None = None
    reference: np.ndarray | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sketch", _frozen_image(self.sketch, "evidence sketch"))
        object.__setattr__(self, "lq", _frozen_image(self.lq, "evidence low-quality image"))
        object.__setattr__(
            self, "reference", _frozen_image(self.reference, "evidence reference face")
        )
        if self.text is not None:
            if not isinstance(self.text, str):
                raise InputError(
                    f"evidence text: expected a string, got {type(self.text).__name__}"
                )
            text = " ".join(self.text.split())
            object.__setattr__(self, "text", text or None)
        if self.reference is not None and self.reference.ndim != 3:
            raise InputError("evidence reference face: expected an RGB image (H, W, 3)")

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities present, in :data:`MODALITIES` order."""
        return tuple(m for m in MODALITIES if getattr(self, m) is not None)

    def has(self, modality: str) -> bool:
        """Whether this modality is present."""
        if modality not in MODALITIES:
            raise InputError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
        return getattr(self, modality) is not None

    def require_any(self) -> Evidence:
        """Return self, or raise if no modality is present."""
        if not self.modalities:
            raise InputError(
                "no evidence given: supply at least one of a sketch, a low-quality image, "
                "a text description or a reference face"
            )
        return self

    def with_reference(self, reference: np.ndarray | None) -> Evidence:
        """A copy with the reference face replaced (the loop's next-round evidence)."""
        return replace(self, reference=reference)


@dataclass(frozen=True)
class Condition:
    """One modality encoded for the generator.

    ``tokens`` are cross-attention tokens of a fixed shape ``(num_tokens, dim)`` and
    ``spatial`` a map ``(channels, H, W)`` concatenated to the noisy input; either
    may be ``None``. ``present`` is False for the null condition used for
    classifier-free guidance, whose tensors are zeros of the same shapes.
    """

    modality: str
    tokens: torch.Tensor | None = None
    spatial: torch.Tensor | None = None
    present: bool = True

    def __post_init__(self) -> None:
        if self.tokens is None and self.spatial is None:
            raise InputError(f"condition {self.modality!r}: needs tokens, a spatial map or both")
        if self.tokens is not None and self.tokens.dim() != 2:
            raise InputError(
                f"condition {self.modality!r}: tokens must be (num_tokens, dim), "
                f"got {tuple(self.tokens.shape)}"
            )
        if self.spatial is not None and self.spatial.dim() != 3:
            raise InputError(
                f"condition {self.modality!r}: spatial map must be (channels, H, W), "
                f"got {tuple(self.spatial.shape)}"
            )

    def null(self) -> Condition:
        """The absent counterpart: zeros of the same shapes, ``present=False``."""
        import torch

        return Condition(
            modality=self.modality,
            tokens=None if self.tokens is None else torch.zeros_like(self.tokens),
            spatial=None if self.spatial is None else torch.zeros_like(self.spatial),
            present=False,
        )


@dataclass(frozen=True)
class Match:
    """One gallery identity in a ranked list (rank 1 is best)."""

    identity: str
    score: float
    rank: int
    image_id: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A generated face and how well it fits the evidence and the gallery."""

    image: np.ndarray
    round: int
    index: int
    seed: int
    evidence_scores: dict[str, float] = field(default_factory=dict)
    matches: tuple[Match, ...] = ()
    rejected: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen_image(self.image, "candidate image"))

    @property
    def consistency(self) -> float:
        """Mean agreement with the evidence (higher is better); 0.0 when unscored."""
        if not self.evidence_scores:
            return 0.0
        return float(np.mean(list(self.evidence_scores.values())))


@dataclass(frozen=True)
class RoundTrace:
    """What happened in one round of the loop."""

    round: int
    candidates: tuple[Candidate, ...]
    matches: tuple[Match, ...]
    reference: str | None = None
    """Where the round's reference identity came from, e.g. ``"candidate 0/2"``."""
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    """What the loop could not do or did differently this round, and the investigator's choice."""


@dataclass(frozen=True)
class Result:
    """The answer: identities ranked over all rounds, with the rounds that led there."""

    matches: tuple[Match, ...]
    rounds: tuple[RoundTrace, ...]
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """Every candidate of every round, in order."""
        return tuple(c for r in self.rounds for c in r.candidates)

    def top(self, k: int = 10) -> tuple[Match, ...]:
        """The first ``k`` ranked identities."""
        return self.matches[:k]
