"""Evidence framed like the generator's crops: what the loop conditions on and scores against.

The generator works on aligned crops (the 5-point template of :mod:`facefit.faces`
at its ``image_size``). A witness's sketch and a camera frame arrive unframed, so
they are aligned here once per probe, and the same aligned copies are used twice:
as the generator's conditions and as what every candidate is checked against.

- **Sketch.** Detected like a photo; when no face is found, the framed-drawing
  fallback of :mod:`facefit.faces` (:data:`~facefit.faces.FRAMED_LANDMARKS`) is used
  only for a drawing that looks framed as a portrait — ink in the frame, an upright
  aspect ratio. Anything else (a blank page, a landscape scene) is refused with a
  message, since the fallback would invent a framing. The drawing is then aligned
  with the landmarks and normalised exactly as training's FS2K pairs were.
- **Low-quality image.** A square image no larger than the generator's crop is taken
  as an aligned crop (as the evaluation protocol makes it: 8×8 or 16×16 from an
  aligned photo; no detector finds a face in a few pixels). A larger frame is
  detected and aligned.
- **Text** and a **reference** face go to their conditioners as given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.types import Evidence

__all__ = ["MIN_INK", "PreparedEvidence", "frame_sketch", "prepare_evidence"]

MIN_INK = 0.01
"""Least share of dark pixels for a drawing to count as framed when no face is detected."""
PORTRAIT_ASPECT = (0.8, 2.0)
"""Height / width range of a drawing framed as a portrait (FS2K's is 1.0–1.4)."""
LQ_SCORING_SIZE = 16
"""Side at which a detected (large) low-quality frame is compared with candidates."""


@dataclass(frozen=True)
class PreparedEvidence:
    """The probe's evidence aligned to the generator's template.

    ``evidence`` is what the conditioners see (aligned sketch and low-quality image,
    text, reference); ``sketch`` is the aligned, normalised drawing (grey, image
    size) and ``lq`` the aligned low-quality image at its own small size, both for
    scoring candidates; ``notes`` say how each was framed.
    """

    evidence: Evidence
    sketch: np.ndarray | None
    lq: np.ndarray | None
    notes: tuple[str, ...] = ()


def _looks_framed(grey: np.ndarray) -> str | None:
    """Why a drawing does not look like a framed portrait, or None if it does."""
    from facefit.sketch import normalize_sketch

    height, width = grey.shape
    aspect = height / width
    if not PORTRAIT_ASPECT[0] <= aspect <= PORTRAIT_ASPECT[1]:
        return f"its aspect ratio (height/width {aspect:.2f}) is not a portrait's"
    if grey.std() < 2.0:
        return "it is blank"
    ink = float((normalize_sketch(grey) < 128).mean())
    if ink < MIN_INK:
        return f"it has almost no lines ({ink:.1%} of the page is ink)"
    return None


def frame_sketch(
    sketch: np.ndarray, detector: Any, size: int, source: str
) -> tuple[np.ndarray, str]:
    """The drawing aligned to the ``size`` template, normalised; and how it was framed."""
    from facefit.faces import FRAMED_LANDMARKS, align_landmarks, largest
    from facefit.sketch import normalize_sketch, to_grey

    grey = to_grey(sketch, source)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    detections = detector.detect(rgb)
    if detections:
        landmarks = largest(detections).landmarks
        how = "sketch: face detected"
    else:
        why = _looks_framed(grey)
        if why is not None:
            raise InputError(
                f"{source}: no face can be framed in this sketch (no face detected, and {why}); "
                "give a drawing of one face filling the frame, or crop it to the face"
            )
        landmarks = FRAMED_LANDMARKS * np.float32([grey.shape[1], grey.shape[0]])
        how = "sketch: no face detected, framed-drawing fallback used"
    return normalize_sketch(align_landmarks(grey, landmarks, size)), how


def prepare_evidence(evidence: Evidence, *, detector: Any, image_size: int) -> PreparedEvidence:
    """Align the image evidence to the generator's template (see the module doc)."""
    from facefit.degrade import downscale, to_rgb_square
    from facefit.faces import align_landmarks, largest

    evidence.require_any()
    notes: list[str] = []
    sketch = lq = None
    changes: dict[str, Any] = {}
    if evidence.sketch is not None:
        source = evidence.sources.get("sketch", "evidence sketch")
        sketch, how = frame_sketch(evidence.sketch, detector, image_size, source)
        notes.append(how)
        changes["sketch"] = sketch
    if evidence.lq is not None:
        image = evidence.lq
        height, width = image.shape[:2]
        if height == width and height <= image_size:
            lq = to_rgb_square(image)
            notes.append(f"lq: taken as an aligned {height}x{width} crop")
        else:
            source = evidence.sources.get("lq", "evidence low-quality image")
            rgb = to_rgb_square(image) if image.ndim == 2 else image
            detections = detector.detect(np.ascontiguousarray(rgb))
            if not detections:
                raise InputError(
                    f"{source}: no face found in the low-quality image; crop it to the face "
                    f"(a square crop of at most {image_size} px is taken as aligned)"
                )
            aligned = align_landmarks(rgb, largest(detections).landmarks, image_size)
            lq = downscale(aligned, min(LQ_SCORING_SIZE, image_size))
            notes.append(f"lq: face detected, aligned and compared at {lq.shape[0]} px")
        changes["lq"] = lq
    return PreparedEvidence(replace(evidence, **changes), sketch, lq, tuple(notes))
