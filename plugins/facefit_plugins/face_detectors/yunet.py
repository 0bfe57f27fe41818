"""Face detector ``yunet``: OpenCV's YuNet (ONNX) with 5 landmarks.

The model file is found by :func:`facefit.weights.resolve` (``facefit models
install`` puts it in the cache) and loaded on the first :meth:`detect`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.errors import InputError
from facefit.interfaces import Detection, FaceDetector


class YuNetDetector(FaceDetector):
    """YuNet face detector (OpenCV zoo, 2023mar): boxes, 5 landmarks and scores.

    ``score_threshold`` drops weak detections, ``nms_threshold`` merges overlapping
    ones. Images are resized so their longer side is at most ``max_side`` (speed)
    and their shorter side at least ``min_side`` (YuNet misses faces that fill a
    tiny image); coordinates are returned in the original image's pixels.
    """

    name = "yunet"

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 50,
        max_side: int = 640,
        min_side: int = 160,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise InputError(f"yunet: score_threshold must be in [0, 1], got {score_threshold}")
        if min_side < 16 or max_side < min_side:
            raise InputError(f"yunet: need 16 <= min_side <= max_side, got {min_side}, {max_side}")
        self.weights = weights
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.max_side = int(max_side)
        self.min_side = int(min_side)
        self._model: Any = None
        self._lock = threading.Lock()  # cv2.FaceDetectorYN keeps per-call state

    def _load(self) -> Any:
        if self._model is None:
            import cv2

            from facefit.weights import resolve

            path = resolve("yunet", self.weights)
            self._model = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), self.score_threshold, self.nms_threshold, self.top_k
            )
        return self._model

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in a ``(H, W, 3)`` uint8 RGB image, best score first."""
        import cv2

        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(
                f"yunet: expected a (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}"
            )
        height, width = image.shape[:2]
        scale = min(self.max_side / max(height, width), 1.0)
        scale = max(
            scale, min(self.min_side / min(height, width), self.max_side / max(height, width))
        )
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if abs(scale - 1.0) > 1e-6:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, size, interpolation=interp)
        model = self._load()
        with self._lock:
            model.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, faces = model.detect(bgr)
        if faces is None:
            return []
        sx, sy = width / bgr.shape[1], height / bgr.shape[0]
        detections = []
        for row in faces:
            x, y, w, h = (float(v) for v in row[:4])
            landmarks = row[4:14].reshape(5, 2).astype(np.float32) * np.float32([sx, sy])
            landmarks.setflags(write=False)
            detections.append(
                Detection((x * sx, y * sy, w * sx, h * sy), landmarks, float(row[14]))
            )
        detections.sort(key=lambda d: -d.score)
        return detections


@hookimpl
def register_face_detectors(register) -> None:
    register(YuNetDetector)
