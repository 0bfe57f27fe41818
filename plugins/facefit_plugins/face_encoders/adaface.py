"""Face encoder and loss ``adaface``: AdaFace IR-50 / IR-101 checkpoints a user supplies.

No AdaFace weights ship with facefit (none can be had from a package registry).
Download an official checkpoint (github.com/mk-minchul/AdaFace, e.g.
``adaface_ir101_webface12m.ckpt``) and name it::

    [face_encoder]
    plugin = "adaface"
    checkpoint = "/models/adaface_ir101_webface12m.ckpt"
    arch = "auto"            # or ir_18, ir_34, ir_50, ir_101, ir_se_50, ir_se_101

The encoder follows AdaFace's own inference: 112×112 aligned faces in **BGR**
order, scaled by ``(x / 255 − 0.5) / 0.5``. The ``adaface`` loss is AdaFace's
adaptive-margin head plus cross-entropy, for training sketch-to-mugshot matchers
(CLIP4Sketch trains one on synthetic sketches).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.files import sha256_file
from facefit.interfaces import FaceEncoder


class AdaFaceEncoder(FaceEncoder):
    """AdaFace IR / IR-SE identity embeddings (512-d) from a user-supplied checkpoint."""

    name = "adaface"
    dim = 512
    input_size = 112

    def __init__(
        self, checkpoint: str, arch: str = "auto", device: str = "cpu", batch_size: int = 32
    ) -> None:
        from facefit_plugins.face_encoders.adaface_net import ARCHS

        if arch != "auto" and arch not in ARCHS:
            from facefit.errors import InputError

            raise InputError(f"adaface: unknown arch {arch!r}; known: auto, {', '.join(ARCHS)}")
        self.checkpoint = Path(checkpoint).expanduser()
        self.arch = arch
        self.device = device
        self.batch_size = int(batch_size)
        self._model: Any = None
        self._version: str | None = None

    @property
    def version(self) -> str:  # type: ignore[override]
        """Architecture and the checkpoint's content hash: galleries never mix weights."""
        if self._version is None:
            self._load()
            self._version = f"{self._model.arch}-{sha256_file(self.checkpoint)[:16]}"
        return self._version

    def _load(self) -> Any:
        if self._model is None:
            import torch

            from facefit_plugins.face_encoders.adaface_net import load_backbone

            self._model = load_backbone(self.checkpoint, self.arch).to(torch.device(self.device))
        return self._model

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """``(N, 112, 112, 3)`` RGB uint8 → ``(N, 512)`` normalized embeddings."""
        import torch

        model = self._load()
        device = next(model.parameters()).device
        out = []
        for start in range(0, len(faces), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(faces[start : start + self.batch_size]))
            x = batch.to(device).flip(-1).permute(0, 3, 1, 2).float().contiguous()  # BGR, NCHW
            x = (x / 255.0 - 0.5) / 0.5
            with torch.inference_mode():
                embeddings, _ = model(x)
            out.append(embeddings.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def adaface_loss(
    num_classes: int,
    embedding_size: int = 512,
    m: float = 0.4,
    h: float = 0.333,
    s: float = 64.0,
    t_alpha: float = 0.01,
):
    """AdaFace adaptive-margin loss (m=0.4, h=0.333, s=64, t_alpha=0.01) for training matchers."""
    from facefit_plugins.face_encoders.adaface_net import AdaFaceLoss

    return AdaFaceLoss(num_classes, embedding_size, m, h, s, t_alpha)


@hookimpl
def register_face_encoders(register):
    register(AdaFaceEncoder)


@hookimpl
def register_losses(register):
    register(adaface_loss, name="adaface")
