"""Face encoder ``sketch-matcher``: a sketch-to-mugshot matcher trained by ``facefit train-matcher``.

The matcher is SFace with its last layers fine-tuned on photo–sketch pairs (see
:mod:`facefit.matcher`); photos and sketches go through the same network, so a gallery
of mugshots embedded with it is searched with sketches::

    facefit eval ../shared/data --split dev --modes direct,matcher \\
        --matcher sketch-matcher                      # the shipped matcher
    facefit train-matcher --data ../shared/data --out models/sketch-matcher
    facefit eval ../shared/data --split dev --modes direct,matcher \\
        --matcher sketch-matcher --matcher-path models/sketch-matcher

In a pipeline config::

    [face_encoder]
    plugin = "sketch-matcher"
    weights = "models/sketch-matcher"     # or [weights] sketch-matcher = "…"

Without ``weights`` the directory is ``$FACEFIT_SKETCH_MATCHER_PATH``, else
``$FACEFIT_HOME/models/sketch-matcher``, which is built on first use (or by ``facefit
models install``) from the matcher facefit ships: its fine-tuned layers, applied to
SFace (:mod:`facefit.matcher.shipped`). So ``SketchMatcherEncoder()`` works with no
training step. ``backend = "onnxruntime"`` (default) runs
``model.onnx``; ``backend = "torch"`` runs ``model.safetensors`` in the torch module
(``device`` picks where).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.errors import InputError
from facefit.interfaces import FaceEncoder

BACKENDS = ("onnxruntime", "torch")


class SketchMatcherEncoder(FaceEncoder):
    """Trained sketch-to-mugshot matcher (SFace fine-tuned with AdaFace), ONNX Runtime or torch."""

    name = "sketch-matcher"
    dim = 128
    input_size = 112

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        backend: str = "onnxruntime",
        device: str = "cpu",
        batch_size: int = 64,
        threads: int = 0,
    ) -> None:
        from facefit.matcher.files import read_config, resolve_matcher_dir

        if backend not in BACKENDS:
            raise InputError(
                f"sketch-matcher: unknown backend {backend!r}; use one of {', '.join(BACKENDS)}"
            )
        self.directory = resolve_matcher_dir(weights)
        self.config = read_config(self.directory)
        self.backend = backend
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.threads = int(threads)
        # per instance: the directory decides the shape and the version
        self.dim = int(self.config.get("dim", 128))
        self.input_size = int(self.config.get("input_size", 112))
        digest = self.config.get("files", {}).get("model.onnx") or self.config.get("onnx_sha256")
        self.version = f"sketch-matcher-{str(digest)[:16]}"
        self._runner: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._runner is None:
                if self.backend == "torch":
                    import torch

                    from facefit.matcher.files import load_matcher_torch

                    module = load_matcher_torch(self.directory)
                    self._runner = module.to(torch.device(self.device))
                else:
                    import onnxruntime as ort

                    from facefit.matcher.files import load_matcher_onnx

                    options = ort.SessionOptions()
                    options.log_severity_level = 3
                    if self.threads > 0:
                        options.intra_op_num_threads = self.threads
                    model = load_matcher_onnx(self.directory)
                    self._runner = ort.InferenceSession(
                        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
                    )
        return self._runner

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """``(N, 112, 112, 3)`` uint8 RGB crops → ``(N, 128)`` raw embeddings."""
        runner = self._load()
        out = np.empty((len(faces), self.dim), dtype=np.float32)
        for start in range(0, len(faces), self.batch_size):
            batch = faces[start : start + self.batch_size]
            blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
            if self.backend == "torch":
                import torch

                with torch.no_grad():
                    x = torch.from_numpy(blob).to(torch.device(self.device))
                    out[start : start + len(batch)] = runner(x).float().cpu().numpy()
            else:
                name = runner.get_inputs()[0].name
                out[start : start + len(batch)] = runner.run(None, {name: blob})[0]
        return out


@hookimpl
def register_face_encoders(register) -> None:
    register(SketchMatcherEncoder)
