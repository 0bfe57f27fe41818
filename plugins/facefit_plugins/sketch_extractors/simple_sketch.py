"""Sketch extractor ``simple-sketch``: a weight-free photo → line drawing (CLAHE + XDoG).

The work is done by :func:`facefit.imaging.sketch.simple_sketch`; this plugin makes it
available by name, with its parameters as options::

    [sketch_extractor]
    plugin = "simple-sketch"
    sigma = 0.8
"""

from __future__ import annotations

import numpy as np

from facefit import hookimpl
from facefit.interfaces import SketchExtractor


class SimpleSketch(SketchExtractor):
    """Weight-free pencil-like line drawing of a photo (CLAHE + XDoG)."""

    name = "simple-sketch"

    def __init__(
        self,
        sigma: float = 0.8,
        k: float = 1.6,
        tau: float = 0.98,
        epsilon: float = 0.0,
        phi: float = 150.0,
        clahe: float = 2.0,
    ) -> None:
        self.params = {
            "sigma": sigma,
            "k": k,
            "tau": tau,
            "epsilon": epsilon,
            "phi": phi,
            "clahe": clahe,
        }

    def extract(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` RGB (or grey) uint8 photo → ``(H, W)`` uint8 drawing."""
        from facefit.imaging.sketch import simple_sketch

        return simple_sketch(image, **self.params)


@hookimpl
def register_sketch_extractors(register):
    register(SimpleSketch)
