"""Grade generated faces: identity cosine to the true photo, by independent encoders.

The model that steers generation (SFace, through the identity loss and the loop)
must not be the only one that grades it: a generator can learn to please its own
recogniser. The grade is therefore reported by ``dlib`` (an independent network
that nothing in facefit trains or steers with) next to ``sface``.

Generated faces are aligned crops in the template frame already (the generator
renders in it), so they are resampled to each encoder's input size, not detected
again; the true photo is detected and aligned like any gallery photo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from facefit.errors import FacefitError
from facefit.imaging.faces import FaceEmbedder, resize_aligned

__all__ = ["DEFAULT_GRADERS", "IdentityGrader", "make_grader"]

DEFAULT_GRADERS = ("dlib", "sface")
"""Encoders that grade generated faces: the independent evaluator first."""


@dataclass
class IdentityGrader:
    """Identity cosine of candidates to a true photo, per grading encoder."""

    embedders: Mapping[str, FaceEmbedder]
    unavailable: Mapping[str, str]
    """Graders that could not be created, with the reason."""

    def grade(
        self,
        candidates: Sequence[np.ndarray],
        true_photo: np.ndarray,
        *,
        source: str = "<true photo>",
    ) -> dict[str, list[float]]:
        """Cosine of each candidate to the true photo, per grader.

        Raises :class:`~facefit.errors.InputError` when no face is found in the true photo.
        """
        out: dict[str, list[float]] = {}
        if not candidates:
            return out
        for name, embedder in self.embedders.items():
            size = embedder.encoder.input_size
            truth = embedder.embed_aligned(embedder.align(true_photo, size=size, source=source))[0]
            crops = np.stack([resize_aligned(_rgb(c), size) for c in candidates])
            vectors = embedder.embed_aligned(crops)
            out[name] = [float(v) for v in vectors @ truth]
        return out


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def make_grader(
    registry, names: Sequence[str] = DEFAULT_GRADERS, *, detector: str = "yunet"
) -> IdentityGrader:
    """Create the grading encoders that exist; the others are listed with the reason."""
    embedders: dict[str, FaceEmbedder] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        try:
            embedder = FaceEmbedder.from_registry(registry, detector=detector, encoder=name)
            size = embedder.encoder.input_size
            embedder.embed_aligned(np.zeros((1, size, size, 3), np.uint8))  # loads the weights now
        except (FacefitError, ImportError, OSError) as exc:
            unavailable[name] = f"{type(exc).__name__}: {exc}"
            continue
        embedders[name] = embedder
    return IdentityGrader(embedders, unavailable)
