"""A toy identity encoder plugin for facefit.

It embeds an aligned face as its 8×8 luminance layout, with mean and contrast
removed, so two photos of similar lighting and pose land close together. Real
vendors wrap a trained network here; everything else stays the same.
"""

from __future__ import annotations

import numpy as np

from facefit import hookimpl
from facefit.interfaces import FaceEncoder


class ToyEncoder(FaceEncoder):
    """Coarse luminance layout of an aligned face (a teaching example, not a recogniser)."""

    name = "toy"
    dim = 64
    input_size = 112
    version = "0.1.0"

    def __init__(self, grid: int = 8) -> None:
        if grid * grid != self.dim:
            raise ValueError(f"grid must be {int(self.dim**0.5)} for a {self.dim}-d embedding")
        self.grid = grid

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        grey = faces.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        n, size = len(grey), grey.shape[1]
        cell = size // self.grid
        crop = grey[:, : cell * self.grid, : cell * self.grid]
        pooled = crop.reshape(n, self.grid, cell, self.grid, cell).mean(axis=(2, 4))
        flat = pooled.reshape(n, -1)
        flat -= flat.mean(axis=1, keepdims=True)
        return flat / np.maximum(flat.std(axis=1, keepdims=True), 1e-6)


@hookimpl
def register_face_encoders(register):
    register(ToyEncoder)
