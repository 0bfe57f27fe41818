"""Face encoder ``dlib``: dlib's ResNet face descriptor (128-d), the independent grader.

Not differentiable and never used to steer or train: facefit grades generated faces
with it so that the model that steers (SFace) is not the one that grades.

Needs the optional extra: ``pip install facefit[eval]`` (``dlib-bin``), and the model
files from ``facefit models install`` (``dlib-resnet`` and ``dlib-shape5``).

dlib's descriptor expects its own face chips (``dlib.get_face_chip``, 150×150 with
0.25 padding), framed differently from the 5-point template crops facefit passes
to every encoder. So each crop is re-aligned the dlib way inside the encoder: dlib's
5-point predictor runs on the template crop (the face's position in it is known),
and the chip is cut from there.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.errors import PluginError
from facefit.interfaces import FaceEncoder

INSTALL_HINT = "pip install 'facefit[eval]' (installs dlib-bin)"

# Where the face sits in a crop aligned to the standard template, as fractions of
# the crop side: the box dlib's 5-point predictor starts from.
FACE_BOX = (0.16, 0.20, 0.84, 0.98)


def import_dlib() -> Any:
    """Import dlib or raise a :class:`PluginError` saying how to install it."""
    try:
        import dlib
    except ImportError:
        raise PluginError(f"the 'dlib' face encoder needs dlib: {INSTALL_HINT}") from None
    return dlib


class DlibEncoder(FaceEncoder):
    """dlib ResNet face descriptor (dlib_face_recognition_resnet_model_v1), for grading.

    ``num_jitters`` > 0 averages descriptors of that many jittered copies (slower,
    slightly more stable). ``weights`` and ``shape_predictor`` override the files
    ``dlib-resnet`` and ``dlib-shape5`` (see :mod:`facefit.weights`).
    """

    name = "dlib"
    dim = 128
    input_size = 150
    version = "dlib-resnet-v1"

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        shape_predictor: str | os.PathLike[str] | None = None,
        num_jitters: int = 0,
    ) -> None:
        import_dlib()  # fail at creation, with the install hint, not at first use
        self.weights = weights
        self.shape_predictor = shape_predictor
        self.num_jitters = max(0, int(num_jitters))
        self._models: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._models is None:
                from facefit.weights import resolve

                dlib = import_dlib()
                recognizer = dlib.face_recognition_model_v1(
                    str(resolve("dlib-resnet", self.weights))
                )
                predictor = dlib.shape_predictor(str(resolve("dlib-shape5", self.shape_predictor)))
                self._models = (recognizer, predictor)
        return self._models

    def chips(self, faces: np.ndarray) -> list[np.ndarray]:
        """dlib's own 150×150 chips for template-aligned crops (for inspection)."""
        dlib = import_dlib()
        _, predictor = self._load()
        size = faces.shape[1]
        x0, y0, x1, y1 = (round(f * size) for f in FACE_BOX)
        box = dlib.rectangle(x0, y0, x1, y1)
        out = []
        for face in faces:
            face = np.ascontiguousarray(face)
            out.append(dlib.get_face_chip(face, predictor(face, box), size=150, padding=0.25))
        return out

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """``(N, 150, 150, 3)`` uint8 RGB template crops → ``(N, 128)`` descriptors."""
        recognizer, _ = self._load()
        vectors = recognizer.compute_face_descriptor(self.chips(faces), self.num_jitters)
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32).reshape(-1, self.dim)


@hookimpl
def register_face_encoders(register) -> None:
    register(DlibEncoder)
