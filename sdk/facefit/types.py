"""Values passed between the SDK's parts.

All are frozen dataclasses. Image arrays are copied and made read-only on the way
in, so a value handed to a plugin cannot be changed behind the caller's back.

Image convention: ``numpy.ndarray`` of ``uint8``, shape ``(H, W, 3)`` in RGB order,
or ``(H, W)`` for grey sketches. :class:`Evidence` also takes image file paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.errors import InputError

if TYPE_CHECKING:  # torch is imported lazily: the SDK's types must stay light
    import torch

MODALITIES = ("sketch", "lq", "text", "reference")
"""Kinds of evidence, in the order the generator sees them."""
IMAGE_MODALITIES = ("sketch", "lq", "reference")
"""The kinds of evidence that are images (each must show a face; see :class:`Evidence`)."""


def _frozen_image(value: Any, what: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value)
    if array.dtype != np.uint8:
        hint = ""
        if array.dtype.kind in "US":
            hint = "; to read a file, pass it as a path (str or pathlib.Path), not inside an array"
        raise InputError(
            f"{what}: expected a uint8 image array or an image file path, got dtype {array.dtype}{hint}"
        )
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise InputError(f"{what}: expected shape (H, W) or (H, W, 3), got {array.shape}")
    if min(array.shape[:2]) < 1:
        raise InputError(f"{what}: image is empty (shape {array.shape})")
    array = array.copy()
    array.setflags(write=False)
    return array


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


MAX_TEXT_CHARS = 2000
"""Longest description accepted (after whitespace is collapsed), as in the web app. A
witness's description is a few sentences; a longer text is refused rather than cut
off unseen (the text encoder reads only its first 256 word pieces, the contact sheet
shows its start)."""

EMPTY_TEXT_NOTE = "text: the description was empty (blank or whitespace only) and is left out"
"""The note an empty description leaves in :attr:`Evidence.notes` and in the first round's notes."""


@dataclass(frozen=True)
class Evidence:
    """What an investigation has: any non-empty subset of the modalities.

    ``sketch`` is a drawing of the face (grey or RGB); ``lq`` a low-quality photo
    (a small or blurred camera frame); ``text`` a description in words;
    ``reference`` a face photo that stands for an identity (a gallery face or a
    candidate the investigator picked). Each image is a ``uint8`` array or the
    path of an image file (read with :func:`facefit.imaging.images.load_image`; the path is
    recorded in ``sources``). ``sources`` maps a modality to the file it came
    from, for provenance.

    Text is normalized (runs of whitespace become one space). A blank description
    is left out and noted in ``notes``, and the pipeline copies the note into the
    first round's notes, so an app can tell that a run used no text.

    Each image must show a face the detector finds, or the pipeline refuses it
    (:mod:`facefit.pipeline.evidence`). ``allow_no_face`` names the image
    modalities the caller vouches for without one: a sketch then uses the
    framed-drawing fallback, and a small square low-quality image or a square
    reference is taken as an aligned crop as given. Such use is flagged in the
    result.
    """

    sketch: np.ndarray | None = None
    """The witness's drawing: ``(H, W)`` grey or ``(H, W, 3)`` RGB, unaligned."""
    lq: np.ndarray | None = None
    """A low-quality image of the face: a camera frame, or a small aligned crop (8×8, 16×16)."""
    text: str | None = None
    """The description in words (``None`` when absent)."""
    reference: np.ndarray | None = None
    """A face photo standing for an identity, RGB."""
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    """Modality → the file it was read from."""
    notes: tuple[str, ...] = field(default=(), compare=False)
    """What was changed or left out on the way in (e.g. an empty description)."""
    allow_no_face: tuple[str, ...] = ()
    """Image modalities (``"sketch"``, ``"lq"``, ``"reference"``) that may be used
    without a detected face, flagged (see the class doc); a string names one."""
    extra_sketches: tuple[np.ndarray, ...] = ()
    """More drawings of the face (other witnesses), as arrays or paths. ``sketch`` is the
    first; every one is matched directly and fused into the ranking
    (:mod:`facefit.pipeline.direct`); the generator is conditioned on the first."""
    extra_lq: tuple[np.ndarray, ...] = ()
    """More low-quality images (other cameras or frames), like :attr:`extra_sketches`."""
    extra_texts: tuple[str, ...] = ()
    """More descriptions (other witnesses), after ``text``. Each is normalized like
    ``text``; a blank one is left out and noted (a blank ``text`` gives its place to the
    next). Every description is scored (the mean of their agreements, each one recorded:
    :mod:`facefit.pipeline.direct`), and the generator's candidates are shared among
    them: description ``j`` of ``n`` conditions the ``j``-th equal block of each round's
    candidates (:mod:`facefit.pipeline.loop`)."""

    def __post_init__(self) -> None:
        allowed = (
            (self.allow_no_face,) if isinstance(self.allow_no_face, str) else self.allow_no_face
        )
        allowed = tuple(dict.fromkeys(allowed or ()))
        unknown = [m for m in allowed if m not in IMAGE_MODALITIES]
        if unknown:
            raise InputError(
                f"allow_no_face: {', '.join(map(repr, unknown))} is not an image modality; "
                f"give any of {', '.join(IMAGE_MODALITIES)}"
            )
        object.__setattr__(self, "allow_no_face", allowed)
        sources = dict(self.sources)
        notes = list(self.notes)
        whats = {
            "sketch": "evidence sketch",
            "lq": "evidence low-quality image",
            "reference": "evidence reference face",
        }
        for modality, what in whats.items():
            value = getattr(self, modality)
            if _is_path(value):
                from facefit.imaging.images import load_image

                sources.setdefault(modality, os.fspath(value))
                value = load_image(value)
            object.__setattr__(self, modality, _frozen_image(value, what))
        for modality, name in (("sketch", "extra_sketches"), ("lq", "extra_lq")):
            values = list(getattr(self, name) or ())
            if values and getattr(self, modality) is None:
                raise InputError(
                    f"evidence {name}: given without a first {modality}; pass the first as "
                    f"{modality}=…"
                )
            for n, value in enumerate(values, start=2):
                key = f"{modality}.{n}"
                if _is_path(value):
                    from facefit.imaging.images import load_image

                    sources.setdefault(key, os.fspath(value))
                    value = load_image(value)
                values[n - 2] = _frozen_image(value, f"{whats[modality]} {n}")
            object.__setattr__(self, name, tuple(values))
        if isinstance(self.extra_texts, str):
            raise InputError("evidence extra_texts: expected a list of descriptions, got a string")
        texts = []
        for n, value in enumerate((self.text, *(self.extra_texts or ())), start=1):
            if value is None:
                continue
            which = "text" if n == 1 else f"text {n}"
            if not isinstance(value, str):
                raise InputError(f"evidence {which}: expected a string, got {type(value).__name__}")
            text = " ".join(value.split())
            if len(text) > MAX_TEXT_CHARS:
                raise InputError(
                    f"evidence {which}: the description is {len(text):,} characters, more "
                    f"than the limit of {MAX_TEXT_CHARS:,}; shorten it to the witness's words "
                    "about the face"
                )
            if not text and EMPTY_TEXT_NOTE not in notes:
                notes.append(EMPTY_TEXT_NOTE)
            if text:
                texts.append(text)
        object.__setattr__(self, "text", texts[0] if texts else None)
        object.__setattr__(self, "extra_texts", tuple(texts[1:]))
        if self.reference is not None and self.reference.ndim != 3:
            raise InputError("evidence reference face: expected an RGB image (H, W, 3)")
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "notes", tuple(notes))

    @classmethod
    def from_files(
        cls,
        *,
        sketch: str | os.PathLike[str] | None = None,
        lq: str | os.PathLike[str] | None = None,
        text: str | None = None,
        reference: str | os.PathLike[str] | None = None,
        allow_no_face: tuple[str, ...] | str = (),
    ) -> Evidence:
        """Evidence read from image files (any subset) and a description.

        Raises :class:`~facefit.errors.InputError` naming the file when one cannot
        be read, and when no evidence at all is given. ``allow_no_face``: see the
        class doc.
        """
        for name, value in (("sketch", sketch), ("lq", lq), ("reference", reference)):
            if value is not None and not _is_path(value):
                raise InputError(
                    f"Evidence.from_files: {name} must be a file path, got "
                    f"{type(value).__name__}; pass arrays to Evidence(...) instead"
                )
        return cls(
            sketch=sketch, lq=lq, text=text, reference=reference, allow_no_face=allow_no_face
        ).require_any()

    def images(self, modality: str) -> tuple[np.ndarray, ...]:
        """Every image of a modality: the first, then the extra ones (``"sketch"``, ``"lq"``)."""
        first = getattr(self, modality)
        extra = {"sketch": self.extra_sketches, "lq": self.extra_lq}.get(modality, ())
        return () if first is None else (first, *extra)

    @property
    def texts(self) -> tuple[str, ...]:
        """Every description: ``text``, then :attr:`extra_texts` (empty without text)."""
        return () if self.text is None else (self.text, *self.extra_texts)

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
    may be ``None``. ``vector`` is an optional fixed-length feature vector ``(dim,)``
    beside the tokens: the text conditioner puts there the attributes a description
    states (:func:`facefit.text_agreement.attribute_features`); models that do not
    read it ignore it. ``present`` is False for the null condition used for
    classifier-free guidance, whose tensors are zeros of the same shapes.
    """

    modality: str
    tokens: torch.Tensor | None = None
    spatial: torch.Tensor | None = None
    present: bool = True
    vector: torch.Tensor | None = None

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
        if self.vector is not None and self.vector.dim() != 1:
            raise InputError(
                f"condition {self.modality!r}: vector must be (dim,), got {tuple(self.vector.shape)}"
            )

    def null(self) -> Condition:
        """The absent counterpart: zeros of the same shapes, ``present=False``."""
        import torch

        return Condition(
            modality=self.modality,
            tokens=None if self.tokens is None else torch.zeros_like(self.tokens),
            spatial=None if self.spatial is None else torch.zeros_like(self.spatial),
            present=False,
            vector=None if self.vector is None else torch.zeros_like(self.vector),
        )


@dataclass(frozen=True)
class Match:
    """One gallery identity in a ranked list (rank 1 is best)."""

    identity: str
    """The identity's name in the gallery."""
    score: float
    """Cosine similarity (higher is better). In :attr:`Result.matches` and
    :attr:`RoundTrace.fused`, the raw fused score of the evidence matched directly and
    the candidates (:mod:`facefit.fusion`; it ranks, :attr:`probability` calibrates it)."""
    rank: int
    """Place in the list, from 1."""
    image_id: str | None = None
    """The gallery face that matched best: its source (usually the file it was enrolled from)."""
    probability: float | None = None
    """In :attr:`Result.matches`: the calibrated probability that this identity is the
    source (:mod:`facefit.fusion`); None where no fitted profile applies."""
    sources: dict[str, float] = field(default_factory=dict, compare=False)
    """In :attr:`Result.matches`: the identity's score from each source fused into
    ``score`` (``"sketch"``, ``"lq"``, ``"text"``, ``"generated"``)."""


@dataclass(frozen=True)
class Candidate:
    """A generated face and how well it fits the evidence and the gallery."""

    image: np.ndarray
    """The face, ``(S, S, 3)`` uint8 RGB at the generator's size, aligned to its template."""
    round: int
    """The round that made it (from 0)."""
    index: int
    """Its place in the round (from 0): what :class:`~facefit.pipeline.Choice` picks by."""
    seed: int
    """The round's sampler seed; candidate ``i`` started from the noise of ``seed + i``."""
    evidence_scores: dict[str, float] = field(default_factory=dict)
    """Agreement with each checkable modality of the evidence (``"sketch"``, ``"lq"``,
    ``"reference"``, ``"text"``; see :mod:`facefit.pipeline.scoring`)."""
    matches: tuple[Match, ...] = ()
    """The gallery identities closest to this candidate, best first (``top_k`` of them)."""
    rejected: bool = False
    """The investigator rejected it: left out of the round's ranking and of steering."""

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
    """The round's number, from 0."""
    candidates: tuple[Candidate, ...]
    """The faces sampled in this round, in index order."""
    matches: tuple[Match, ...]
    """This round's identity ranking: each identity's best cosine to a non-rejected candidate."""
    reference: str | None = None
    """Where the round's reference identity came from, e.g. ``"candidate 0/2"``
    (``None`` in round 0 without a reference face in the evidence)."""
    seconds: float = 0.0
    """Wall-clock time of the round."""
    notes: tuple[str, ...] = ()
    """What the loop could not do or did differently this round, and the investigator's choice."""
    fused: tuple[Match, ...] = ()
    """The ranking after this round: the evidence matched directly fused with every round so
    far (what this round added shows against the previous round's)."""


@dataclass(frozen=True)
class Result:
    """The answer: identities ranked over all rounds, with the rounds that led there.

    ``provenance`` holds how the run went: ``"stopped"`` (why the loop ended: all
    rounds run, a stable top identity, the investigator's accept, or a cancel),
    ``"rounds_run"``, ``"round_seeds"`` (one sampler seed per round),
    ``"seconds"`` (wall-clock time of :meth:`Pipeline.run <facefit.pipeline.Pipeline.run>`),
    and with a gallery ``"fusion"`` (the profile, encoders, match prior, threshold, top
    probability, ``no_likely_match`` and notes) and ``"direct_matches"`` (the ranking
    from the evidence alone).
    """

    matches: tuple[Match, ...]
    """Identities ranked by the evidence matched directly fused with the rounds run, best
    first (``top_k`` of them; empty without a gallery); each with its raw fused score,
    calibrated probability and per-source scores (:mod:`facefit.pipeline.ranking`)."""
    rounds: tuple[RoundTrace, ...]
    """Each round run, in order."""
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    """How the run went (see the class doc); ``facefit generate`` writes more to provenance.json."""

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """Every candidate of every round, in order."""
        return tuple(c for r in self.rounds for c in r.candidates)

    @property
    def notes(self) -> tuple[str, ...]:
        """Every round's notes, in order (what the loop could not do or did differently)."""
        return tuple(n for r in self.rounds for n in r.notes)

    def top(self, k: int = 10) -> tuple[Match, ...]:
        """The first ``k`` ranked identities."""
        return self.matches[:k]

    @property
    def no_likely_match(self) -> bool:
        """True when every identity's calibrated probability is below the run's threshold
        (``no_match_threshold``): the gallery probably does not hold the source.
        False when the scores are not calibrated (see ``provenance["fusion"]``)."""
        return bool(self.provenance.get("fusion", {}).get("no_likely_match", False))
