"""Face encoder ``sface``: SFace (OpenCV zoo, 2021dec), 112×112 aligned RGB → 128-d.

Two ways to run the same weights:

- :class:`SFaceEncoder`, the registered :class:`~facefit.interfaces.FaceEncoder`:
  batched ONNX Runtime inference, for galleries and retrieval;
- :func:`load_sface_torch`, a differentiable ``torch.nn.Module`` rebuilt from the
  ONNX initializers, for the identity loss.

Input convention, checked against ``cv2.FaceRecognizerSF``: the network itself takes
RGB values in 0–255 (it subtracts 127.5 and scales by 1/128 inside the graph);
OpenCV's API takes BGR crops and swaps the channels before the network. facefit's
crops are RGB, so they go in as they are.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit import hookimpl
from facefit.interfaces import FaceEncoder
from facefit.weights.onnx_graphs import batchable

if TYPE_CHECKING:
    import torch

__all__ = ["SFaceEncoder", "load_sface_onnx", "load_sface_torch"]

INPUT_NAME = "data"
OUTPUT_NAME = "fc1"


def load_sface_onnx(path: str | os.PathLike[str] | None = None) -> Any:
    """The SFace ONNX model prepared for batching: an ``onnx.ModelProto``.

    The published file fixes the batch size to 1 and lists its weights as graph
    inputs (which stops ONNX Runtime from folding constants); both are fixed in
    memory, the file is not changed.
    """
    import onnx

    from facefit.weights import resolve

    return batchable(onnx.load(str(resolve("sface", path))))


class SFaceEncoder(FaceEncoder):
    """SFace identity embeddings (128-d) with ONNX Runtime; batches of ``batch_size``."""

    name = "sface"
    dim = 128
    input_size = 112
    version = "sface-2021dec"

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        threads: int = 0,
    ) -> None:
        self.weights = weights
        self.batch_size = max(1, int(batch_size))
        self.threads = int(threads)
        self._session: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.log_severity_level = 3
                if self.threads > 0:
                    options.intra_op_num_threads = self.threads
                model = load_sface_onnx(self.weights)
                self._session = ort.InferenceSession(
                    model.SerializeToString(), options, providers=["CPUExecutionProvider"]
                )
        return self._session

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """``(N, 112, 112, 3)`` uint8 RGB crops → ``(N, 128)`` raw embeddings."""
        session = self._load()
        out = np.empty((len(faces), self.dim), dtype=np.float32)
        for start in range(0, len(faces), self.batch_size):
            batch = faces[start : start + self.batch_size]
            blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
            out[start : start + len(batch)] = session.run([OUTPUT_NAME], {INPUT_NAME: blob})[0]
        return out


def load_sface_torch(path: str | os.PathLike[str] | None = None) -> torch.nn.Module:
    """SFace as a differentiable torch module in eval mode.

    Takes ``(N, 3, 112, 112)`` float RGB in [0, 255] (aligned crops, as for
    :class:`SFaceEncoder`) and returns ``(N, 128)`` unnormalized embeddings; the
    same weights as the ONNX file, converted by :mod:`facefit.weights.onnx_torch`. Its
    parameters have ``requires_grad=False``: gradients flow to the input only.
    """
    from facefit.weights.onnx_torch import OnnxGraphModule

    module = OnnxGraphModule(load_sface_onnx(path))
    module.requires_grad_(False)
    return module.eval()


@hookimpl
def register_face_encoders(register) -> None:
    register(SFaceEncoder)
