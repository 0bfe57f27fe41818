"""A weight-free detector and encoder, so the gallery CLI runs end to end in tests.

``blob`` finds one "face" filling any image that is not flat (a flat image has no
face); ``pattern`` embeds an aligned crop as its 4×4 grid of mean colours, so
images sharing a coarse pattern (one per identity) embed close together.
"""

import numpy as np

from facefit import hookimpl
from facefit.imaging.faces import FRAMED_LANDMARKS
from facefit.interfaces import Detection, FaceDetector, FaceEncoder


class BlobDetector(FaceDetector):
    name = "blob"

    def detect(self, image):
        if image.std() < 2:
            return []
        h, w = image.shape[:2]
        return [Detection((0.0, 0.0, float(w), float(h)), FRAMED_LANDMARKS * [w, h], 0.99)]


class PatternEncoder(FaceEncoder):
    name = "pattern"
    dim = 48
    input_size = 32
    version = "test-1"

    def embed_aligned(self, faces):
        cells = faces.reshape(len(faces), 4, 8, 4, 8, 3).astype(np.float32).mean(axis=(2, 4))
        return cells.reshape(len(faces), -1) - 127.5


class PatternEncoderV2(PatternEncoder):
    version = "test-2"


def identity_images(n_identities, per_identity, seed=0, size=96):
    """``{identity: [uint8 RGB image, ...]}``: a coarse colour pattern per identity, noisy copies."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_identities):
        coarse = rng.integers(0, 256, (4, 4, 3)).astype(np.float32)
        base = np.kron(coarse, np.ones((size // 4, size // 4, 1), np.float32))
        out[f"person{i}"] = [
            np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
            for _ in range(per_identity)
        ]
    return out


def save_mugshots(folder):
    """``folder/<person>/<n>.png``: four identities, the first with two mugshots."""
    from PIL import Image

    for i, (identity, faces) in enumerate(identity_images(4, 2, seed=4, size=48).items()):
        (folder / identity).mkdir(parents=True)
        for j, face in enumerate(faces[: 2 if i == 0 else 1]):
            Image.fromarray(face).save(folder / identity / f"{j}.png")
    return folder


class Toys:
    """Plugin object: ``blob`` and ``pattern`` (pass ``Toys()`` to ``Registry.load(plugins=...)``)."""

    encoder = PatternEncoder

    @hookimpl
    def register_face_detectors(self, register):
        register(BlobDetector)

    @hookimpl
    def register_face_encoders(self, register):
        register(self.encoder)


class ToysV2(Toys):
    """The same, with ``pattern`` at another version (a changed encoder)."""

    encoder = PatternEncoderV2
