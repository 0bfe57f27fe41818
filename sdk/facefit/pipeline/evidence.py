"""Evidence judged and framed like the generator's crops, or refused.

The generator works on aligned crops (the 5-point template of :mod:`facefit.imaging.faces`
at its ``image_size``). A witness's sketch and a camera frame arrive unframed, so
they are aligned here once per probe, and the same aligned copies are used twice:
as the generator's conditions and as what every candidate is checked against.

Every image gets a verdict (:class:`EvidenceCheck`) before anything is generated,
made with the face checks ``facefit gallery search`` uses
(:meth:`facefit.imaging.faces.FaceEmbedder.locate`: the detector, then for a sketch a
blurred copy):

- **detected** — a face was found (its detector score is kept) and the image is
  aligned to the template with its landmarks;
- **aligned** — a square crop whose detected landmarks already sit on the template
  (within :data:`ALIGNED_TOLERANCE`) is used as it is;
- **as given** — no usable face, and the caller allowed that modality
  (``Evidence(allow_no_face=…)``, ``facefit generate --allow-no-face``): a sketch is
  framed by the framed-drawing fallback (:data:`~facefit.imaging.faces.FRAMED_LANDMARKS`), a
  small square low-quality image or a square reference is taken as an aligned crop.
  Such a use is flagged in the notes (``CAUTION``), ``result.json``, the contact
  sheet and provenance;
- anything else is refused with an :class:`~facefit.errors.InputError` that names
  the input and says what to do. A ranking made from an image with no face would
  look as confident as any other, so nothing unusable is used silently.

Refused whatever is allowed: an image smaller than :data:`MIN_SIDE`, a blank one
(one flat colour), and a sketch that cannot be a framed portrait (a landscape
shape, or almost no lines). **Text** goes to its conditioner as given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.types import Evidence

__all__ = [
    "ALIGNED_TOLERANCE",
    "MIN_INK",
    "MIN_SIDE",
    "EvidenceCheck",
    "PreparedEvidence",
    "frame_sketch",
    "prepare_evidence",
]

MIN_INK = 0.01
"""Least share of dark pixels for a drawing to count as framed when no face is detected."""
PORTRAIT_ASPECT = (0.8, 2.0)
"""Height / width range of a drawing framed as a portrait (FS2K's is 1.0–1.4)."""
LQ_SCORING_SIZE = 16
"""Side at which a detected (large) low-quality frame is compared with candidates."""
MIN_SIDE = {"sketch": 16, "lq": 8, "reference": 16}
"""Smallest side of each image kind; 8×8 is the smallest low-quality crop facefit uses."""
BLANK_STD = 2.0
"""An image whose pixel values vary less than this (standard deviation) is blank."""
ALIGNED_TOLERANCE = 0.1
"""Mean distance of detected landmarks from the template, as a share of the side, up
to which a square crop counts as aligned. YuNet's landmarks on aligned 16–112 px
crops of the demo gallery lie 0.05–0.075 from it; a face shifted by a sixth of the
crop or shown at half size lies 0.11–0.18 away."""
REFERENCE_SIZE = 112
"""Side at which a detected reference face is aligned (the standard template's)."""

FLAG = "CAUTION"
"""Starts the note of an image used as given, so it stands out among the notes."""
ALLOW_HINT = "--allow-no-face {m} (Python: Evidence(..., allow_no_face=['{m}']))"


@dataclass(frozen=True)
class EvidenceCheck:
    """The verdict on one image of the evidence: how it is used, and why."""

    modality: str
    """``"sketch"``, ``"lq"`` or ``"reference"``."""
    source: str
    """The file it came from, or what it is (``evidence sketch``…)."""
    use: str
    """``"detected"`` (face found, aligned with its landmarks), ``"aligned"`` (a square
    crop whose face already sits on the template, used as it is) or ``"as given"``
    (no usable face; used only because the caller allowed it)."""
    detector_score: float | None
    """The detector's score of the face used; None when no face was found."""
    why: str
    """What was found and done, in words."""

    @property
    def flagged(self) -> bool:
        """True when the image is used without a verified face (``use == "as given"``)."""
        return self.use == "as given"

    @property
    def note(self) -> str:
        """The line this verdict adds to the run's notes."""
        return (
            f"{self.modality}: {FLAG} {self.why}"
            if self.flagged
            else f"{self.modality}: {self.why}"
        )

    def to_dict(self) -> dict[str, Any]:
        score = None if self.detector_score is None else round(self.detector_score, 4)
        return {
            "modality": self.modality,
            "source": self.source,
            "use": self.use,
            "detector_score": score,
            "flagged": self.flagged,
            "why": self.why,
        }


@dataclass(frozen=True)
class PreparedEvidence:
    """The probe's evidence aligned to the generator's template.

    ``evidence`` is what the conditioners see (aligned sketch, low-quality image and
    reference, text); ``sketch`` is the aligned, normalized drawing (grey, image
    size) and ``lq`` the aligned low-quality image at its own small size, both for
    scoring candidates; ``checks`` holds one verdict per image and ``notes`` says
    how each was used.
    """

    evidence: Evidence
    sketch: np.ndarray | None
    lq: np.ndarray | None
    notes: tuple[str, ...] = ()
    checks: tuple[EvidenceCheck, ...] = ()
    original: Evidence | None = None
    """The evidence as given (unaligned): what is matched directly against the gallery."""

    def checked(self, modality: str) -> list[tuple[np.ndarray, EvidenceCheck]]:
        """Every original image of ``modality`` (first, then extra) with its verdict."""
        original = self.original if self.original is not None else self.evidence
        images = original.images(modality)
        verdicts = [c for c in self.checks if c.modality == modality]
        return list(zip(images, verdicts, strict=True))

    @property
    def flagged(self) -> tuple[EvidenceCheck, ...]:
        """The verdicts of images used as given (without a verified face)."""
        return tuple(c for c in self.checks if c.flagged)


def _looks_framed(grey: np.ndarray) -> str | None:
    """Why a drawing does not look like a framed portrait, or None if it does."""
    from facefit.imaging.sketch import normalize_sketch

    height, width = grey.shape
    aspect = height / width
    if not PORTRAIT_ASPECT[0] <= aspect <= PORTRAIT_ASPECT[1]:
        return f"its aspect ratio (height/width {aspect:.2f}) is not a portrait's"
    ink = float((normalize_sketch(grey) < 128).mean())
    if ink < MIN_INK:
        return f"it has almost no lines ({ink:.1%} of the page is ink)"
    return None


def _usable_at_all(image: np.ndarray, modality: str, source: str, what: str) -> None:
    """Refuse an image too small or too flat to show any face, whatever is allowed."""
    height, width = image.shape[:2]
    least = MIN_SIDE[modality]
    if min(height, width) < least:
        raise InputError(
            f"{source}: the {what} is {width}x{height} pixels, too small to show a face; "
            f"give one of at least {least}x{least} pixels"
        )
    if float(np.asarray(image, dtype=np.float32).std()) < BLANK_STD:
        raise InputError(
            f"{source}: the {what} is blank (one flat colour) and shows no face; "
            "check that the right file was given"
        )


def _finder(detector: Any) -> Any:
    """The face checks of ``facefit gallery search`` around ``detector`` (locate only)."""
    from facefit.imaging.faces import FaceEmbedder

    return FaceEmbedder(detector, encoder=None)  # locate() with a size needs no encoder


def _template_offset(landmarks: np.ndarray, side: int) -> float:
    """Mean distance of 5 landmarks from the template of a ``side`` crop, per side."""
    from facefit.imaging.faces import template

    distance = np.linalg.norm(np.asarray(landmarks, np.float32) - template(side), axis=1)
    return float(distance.mean()) / side


def _locate(finder: Any, image: np.ndarray, size: int, source: str) -> Any:
    """The largest face as an :class:`~facefit.imaging.faces.AlignedFace`, or None (no fallback)."""
    from facefit.imaging.faces import NoFaceError

    try:
        return finder.locate(image, size=size, source=source, sketch_fallback=False)
    except NoFaceError:
        return None


def _on_template(face: Any, image: np.ndarray) -> tuple[bool, str]:
    """Whether a square image's detected face sits where an aligned crop has it, and why not."""
    height, width = image.shape[:2]
    if face is None:
        return False, "no face was found"
    if height != width:
        return False, "it is not square"
    offset = _template_offset(face.landmarks, height)
    if offset > ALIGNED_TOLERANCE:
        return False, (
            f"a face was found (score {face.detection.score:.2f}) but not where an aligned "
            f"crop has it (landmarks {offset:.0%} of the side away from the template)"
        )
    return True, ""


def frame_sketch(
    sketch: np.ndarray, detector: Any, size: int, source: str, *, allow_fallback: bool = False
) -> tuple[np.ndarray, EvidenceCheck]:
    """The drawing aligned to the ``size`` template and normalized, with its verdict.

    A face is looked for as ``gallery search --sketch-fallback`` does (the detector,
    then a blurred copy). Without one, the framed-drawing fallback is used only when
    ``allow_fallback`` and the drawing looks framed as a portrait; else
    :class:`~facefit.errors.InputError`.
    """
    from facefit.imaging.sketch import normalize_sketch, to_grey

    grey = to_grey(sketch, source)
    _usable_at_all(grey, "sketch", source, "sketch")
    face = _finder(detector).locate(grey, size=size, source=source, sketch_fallback=True)
    if face.alignment == "framed":
        why = _looks_framed(grey)
        if why is not None:
            raise InputError(
                f"{source}: no face can be framed in this sketch (no face detected, and {why}); "
                "give a drawing of one face filling the frame, or crop it to the face"
            )
        if not allow_fallback:
            raise InputError(
                f"{source}: no face detected in this sketch (nor on a blurred copy), so the "
                "candidates would have nothing to match; give a drawing of one face, or crop it "
                "to the face. If it is a portrait drawing framed like a mugshot, allow the "
                f"framed-drawing fallback with {ALLOW_HINT.format(m='sketch')}"
            )
        check = EvidenceCheck(
            "sketch",
            source,
            "as given",
            None,
            "no face detected; framed-drawing fallback used (landmarks placed where a "
            "framed portrait has them), as allowed",
        )
    else:
        blurred = " on a blurred copy" if face.alignment == "detected-blurred" else ""
        check = EvidenceCheck(
            "sketch",
            source,
            "detected",
            float(face.detection.score),
            f"face detected{blurred} (score {face.detection.score:.2f}), aligned",
        )
    return normalize_sketch(face.crop[..., 0]), check


def _prepare_lq(
    image: np.ndarray, detector: Any, image_size: int, source: str, allowed: bool
) -> tuple[np.ndarray, EvidenceCheck]:
    """The low-quality image for conditioning and scoring, with its verdict."""
    from facefit.imaging.degrade import downscale, to_rgb_square

    _usable_at_all(image, "lq", source, "low-quality image")
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    height, width = rgb.shape[:2]
    face = _locate(_finder(detector), np.ascontiguousarray(rgb), image_size, source)
    if height == width and height <= image_size:  # a crop as the evaluation protocol makes
        aligned, why = _on_template(face, rgb)
        crop = to_rgb_square(rgb)
        if aligned:
            score = float(face.detection.score)
            return crop, EvidenceCheck(
                "lq",
                source,
                "aligned",
                score,
                f"an aligned {height}x{width} crop: face detected (score {score:.2f}) "
                "on the template, used as it is",
            )
        if allowed:
            score = None if face is None else float(face.detection.score)
            return crop, EvidenceCheck(
                "lq",
                source,
                "as given",
                score,
                f"taken as an aligned {height}x{width} crop as given ({why}), as allowed",
            )
        raise InputError(
            f"{source}: {why} in this {height}x{width} low-quality image, so it cannot be "
            "checked to be an aligned face crop; give the larger frame it comes from (its face "
            "is detected and aligned), or, if it is an aligned crop (as the evaluation "
            f"protocol's 8x8 and 16x16 are), allow it with {ALLOW_HINT.format(m='lq')}"
        )
    if face is None:
        raise InputError(
            f"{source}: no face found in this {height}x{width} low-quality image; crop it "
            f"closer to the face (a square aligned crop of at most {image_size} px can be "
            f"used as given with {ALLOW_HINT.format(m='lq')})"
        )
    score = float(face.detection.score)
    lq = downscale(face.crop, min(LQ_SCORING_SIZE, image_size))
    return lq, EvidenceCheck(
        "lq",
        source,
        "detected",
        score,
        f"face detected (score {score:.2f}), aligned and compared at {lq.shape[0]} px",
    )


def _prepare_reference(
    image: np.ndarray, detector: Any, source: str, allowed: bool
) -> tuple[np.ndarray, EvidenceCheck]:
    """The reference face as an aligned crop (or as given, when allowed), with its verdict."""
    _usable_at_all(image, "reference", source, "reference face")
    face = _locate(_finder(detector), np.ascontiguousarray(image), REFERENCE_SIZE, source)
    height, width = image.shape[:2]
    if face is not None:
        score = float(face.detection.score)
        if _on_template(face, image)[0]:
            why = f"an aligned crop: face detected (score {score:.2f}) on the template"
            return image, EvidenceCheck("reference", source, "aligned", score, why)
        why = f"face detected (score {score:.2f}), aligned"
        return face.crop, EvidenceCheck("reference", source, "detected", score, why)
    if allowed and height == width:
        why = f"no face found; taken as an aligned {height}x{width} face crop as given, as allowed"
        return image, EvidenceCheck("reference", source, "as given", None, why)
    square = "" if height == width else " (only a square crop can be used as given)"
    raise InputError(
        f"{source}: no face found in the reference image, so it stands for no identity; give "
        "a photo with one visible face, or, for an aligned face crop the detector misses, "
        f"allow it with {ALLOW_HINT.format(m='reference')}{square}"
    )


def prepare_evidence(evidence: Evidence, *, detector: Any, image_size: int) -> PreparedEvidence:
    """Judge and align the image evidence (see the module doc); refuse what is unusable."""
    evidence.require_any()
    allowed = set(evidence.allow_no_face)
    checks: list[EvidenceCheck] = []
    sketch = lq = None
    changes: dict[str, Any] = {}

    def source(modality: str, what: str) -> str:
        return evidence.sources.get(modality, f"evidence {what}")

    fallback = {"allow_fallback": "sketch" in allowed}
    if evidence.sketch is not None:
        sketch, check = frame_sketch(
            evidence.sketch, detector, image_size, source("sketch", "sketch"), **fallback
        )
        checks.append(check)
        changes["sketch"] = sketch
        for n, extra in enumerate(evidence.extra_sketches, start=2):
            where = source(f"sketch.{n}", f"sketch {n}")
            checks.append(frame_sketch(extra, detector, image_size, where, **fallback)[1])
    if evidence.lq is not None:
        where = source("lq", "low-quality image")
        lq, check = _prepare_lq(evidence.lq, detector, image_size, where, "lq" in allowed)
        checks.append(check)
        changes["lq"] = lq
        for n, extra in enumerate(evidence.extra_lq, start=2):
            where = source(f"lq.{n}", f"low-quality image {n}")
            checks.append(_prepare_lq(extra, detector, image_size, where, "lq" in allowed)[1])
    if evidence.reference is not None:
        where = source("reference", "reference face")
        reference, check = _prepare_reference(
            evidence.reference, detector, where, "reference" in allowed
        )
        checks.append(check)
        changes["reference"] = reference
    notes = tuple(c.note for c in checks)
    prepared = replace(evidence, **changes)
    return PreparedEvidence(prepared, sketch, lq, notes, tuple(checks), evidence)
