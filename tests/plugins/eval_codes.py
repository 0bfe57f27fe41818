"""A detector and an encoder driven by pixel codes, so evaluation answers are known.

An image's colour ``(a, b, w)`` *is* its identity evidence: the encoder returns
``cos θ · e_a + sin θ · e_b`` with ``θ = w / 255 · 90°`` (``e_k`` the k-th basis
vector), so a test decides each probe's cosine to every identity. A gallery photo
of identity ``i`` is coloured ``(i, i, 0)``. An image whose red channel is 0 has
no face. The detector puts the 5 landmarks where the template would be if the
whole image were the aligned crop, so alignment only rescales.
"""

from __future__ import annotations

import numpy as np

from facefit import hookimpl
from facefit.imaging.faces import TEMPLATE_112
from facefit.interfaces import Detection, FaceDetector, FaceEncoder

DIM = 32


def code_image(a: int, b: int = 0, w: int = 0, size: int = 64) -> np.ndarray:
    """A solid image carrying the code ``(a, b, w)``."""
    return np.full((size, size, 3), (a, b, w), np.uint8)


def code_vector(a: int, b: int = 0, w: int = 0) -> np.ndarray:
    theta = w / 255 * np.pi / 2
    vector = np.zeros(DIM, np.float32)
    vector[a] += np.cos(theta)
    vector[b] += np.sin(theta)
    return vector


class CodeDetector(FaceDetector):
    """Finds one face filling the image, unless its red channel is 0 at the centre."""

    name = "code"

    def detect(self, image):
        h, w = image.shape[:2]
        if image[h // 2, w // 2, 0] == 0:
            return []
        landmarks = TEMPLATE_112 / 112.0 * np.float32([w, h])
        return [Detection((0.0, 0.0, float(w), float(h)), landmarks, 0.99)]


class CodeEncoder(FaceEncoder):
    """Reads the code at the crop's centre."""

    name = "code"
    dim = DIM
    input_size = 32

    def embed_aligned(self, faces):
        centre = faces[:, self.input_size // 2, self.input_size // 2].astype(int)
        return np.stack([code_vector(*c) for c in centre])


class SwappedCodeEncoder(CodeEncoder):
    """A "matcher" that reads the code with ``a`` and ``b`` swapped."""

    name = "code-swapped"

    def embed_aligned(self, faces):
        centre = faces[:, self.input_size // 2, self.input_size // 2].astype(int)
        return np.stack([code_vector(b, a, w) for a, b, w in centre])


@hookimpl
def register_face_detectors(register):
    register(CodeDetector)


@hookimpl
def register_face_encoders(register):
    register(CodeEncoder)
    register(SwappedCodeEncoder)
