"""The SDK's vocabulary: small base classes a plugin implements.

Each class describes its implementation with class attributes (``name`` and the
shapes a caller needs to know up front) and has one abstract method; everything
else is concrete convenience built on that method. Plugins register subclasses
(or factories returning instances) through the hooks in :mod:`facefit.hookspecs`.

Heavy libraries (torch, onnxruntime, cv2) are imported inside methods, so that
listing plugins stays fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from facefit.errors import InputError, PluginError
from facefit.types import Condition, Evidence

if TYPE_CHECKING:
    from pathlib import Path

    import torch

__all__ = [
    "Conditioner",
    "DenoiserBackend",
    "Detection",
    "FaceDetector",
    "FaceEncoder",
    "Loss",
    "LossInputs",
    "Retriever",
    "Sampler",
    "SketchExtractor",
    "TextEmbedding",
    "TextEncoder",
]


def _check_images(images: np.ndarray, size: int, what: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise InputError(
            f"{what}: expected aligned uint8 RGB faces of shape (N, {size}, {size}, 3), "
            f"got {images.dtype} {images.shape}; align faces first (facefit.faces.align)"
        )
    return images


class FaceEncoder(ABC):
    """Maps aligned face crops to identity embeddings (SFace, dlib, AdaFace, CLIP…).

    ``input_size`` is the side of the aligned square crop the encoder expects;
    embeddings are L2-normalised ``float32`` vectors of length ``dim``, compared
    by cosine similarity. ``version`` is recorded in gallery manifests, so a
    gallery is never searched with a different encoder.
    """

    name: ClassVar[str]
    dim: ClassVar[int]
    input_size: ClassVar[int] = 112
    version: ClassVar[str] = "1"

    @abstractmethod
    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """Embed ``(N, input_size, input_size, 3)`` uint8 RGB crops → ``(N, dim)``."""

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """Validate the crops, embed them and L2-normalise the result."""
        faces = _check_images(faces, self.input_size, f"{self.name} input")
        vectors = np.asarray(self.embed_aligned(faces), dtype=np.float32)
        if vectors.shape != (len(faces), self.dim):
            raise RuntimeError(
                f"face encoder {self.name!r} returned shape {vectors.shape}, "
                f"expected {(len(faces), self.dim)}"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of two aligned faces."""
        va, vb = self.embed(np.stack([a, b]))
        return float(va @ vb)


@dataclass(frozen=True)
class Detection:
    """A detected face: box ``(x, y, w, h)``, 5 landmarks ``(5, 2)`` and a score.

    Landmark order: right eye, left eye, nose tip, right mouth corner, left mouth
    corner (as seen in the image: the subject's right eye is on the image's left).
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


class FaceDetector(ABC):
    """Finds faces and their 5 landmarks in an RGB image."""

    name: ClassVar[str]

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in a ``(H, W, 3)`` uint8 RGB image, best score first."""


@dataclass(frozen=True)
class TextEmbedding:
    """Token-level embeddings padded to a fixed count, their mask, and a pooled vector."""

    tokens: np.ndarray  # (N, num_tokens, dim) float32
    mask: np.ndarray  # (N, num_tokens) bool, True where a real token is
    pooled: np.ndarray  # (N, dim) float32, L2-normalised


class TextEncoder(ABC):
    """Encodes descriptions (MiniLM, CLIP text)."""

    name: ClassVar[str]
    dim: ClassVar[int]
    num_tokens: ClassVar[int]

    @abstractmethod
    def encode(self, texts: list[str]) -> TextEmbedding:
        """Encode a batch of texts."""


class SketchExtractor(ABC):
    """Turns a face photo into a line drawing, and normalises real sketches the same way."""

    name: ClassVar[str]

    @abstractmethod
    def extract(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB photo → ``(H, W)`` uint8 drawing (dark lines on white)."""


class Conditioner(ABC):
    """Encodes one modality of :class:`~facefit.types.Evidence` into a :class:`Condition`.

    ``num_tokens``/``dim`` give the fixed token shape (0 when the conditioner makes
    no tokens); ``channels`` the depth of its spatial map (0 when none), at the
    generator's ``image_size``. Fixed shapes let compiled runtimes use static graphs.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    num_tokens: ClassVar[int] = 0
    dim: ClassVar[int] = 0
    channels: ClassVar[int] = 0
    image_size: int = 64

    @abstractmethod
    def encode(self, evidence: Evidence) -> Condition:
        """Encode this conditioner's modality, which the caller guarantees is present."""

    def null(self) -> Condition:
        """The absent condition used for guidance and for missing evidence."""
        import torch

        tokens = torch.zeros(self.num_tokens, self.dim) if self.num_tokens else None
        spatial = (
            torch.zeros(self.channels, self.image_size, self.image_size) if self.channels else None
        )
        return Condition(self.modality, tokens=tokens, spatial=spatial, present=False)

    def __call__(self, evidence: Evidence) -> Condition:
        """The encoded evidence when its modality is present, else :meth:`null`."""
        return self.encode(evidence) if evidence.has(self.modality) else self.null()


class DenoiserBackend(ABC):
    """Runs the denoiser with the UNet's call: ``(sample, timestep, tokens) → noise``.

    Backends (eager torch, torch.compile, ONNX Runtime, TensorRT) wrap a model and
    must give the same result within a stated tolerance. ``load``/``close`` frame
    the life cycle of whatever the backend holds (engines, graphs, buffers).
    """

    name: ClassVar[str]

    @abstractmethod
    def __call__(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        """One denoiser evaluation: the noise prediction for the image channels.

        ``sample`` is ``(B, 3 + C, S, S)``, the noisy image followed by ``C`` channels of
        spatial evidence; the result is ``(B, 3, S, S)`` (the model's ``out_channels``),
        not shaped like ``sample``. See docs/writing-plugins.md, "Writing a sampler".
        """

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the backend holds. Safe to call twice."""

    def __enter__(self) -> DenoiserBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sampler(ABC):
    """Turns conditions into images with a scheduler driving a denoiser backend."""

    name: ClassVar[str]

    @abstractmethod
    def sample(
        self,
        denoiser: DenoiserBackend,
        conditions: list[Condition],
        *,
        num_images: int,
        steps: int,
        guidance: float,
        seed: int,
    ) -> np.ndarray:
        """Generate ``(num_images, H, W, 3)`` uint8 RGB images."""


class Retriever(ABC):
    """Nearest-neighbour search over L2-normalised embeddings by cosine similarity.

    Items are addressed by non-negative integer labels chosen by the caller.
    """

    name: ClassVar[str]

    def __init__(self, dim: int) -> None:
        if dim <= 0:
            raise InputError(f"retriever dimension must be positive, got {dim}")
        self.dim = dim

    @abstractmethod
    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``(n, dim)`` vectors under ``(n,)`` integer labels."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for each query: ``(scores, labels)``, both ``(n, k)``, best first."""

    def check_vectors(self, vectors: np.ndarray, what: str = "vectors") -> np.ndarray:
        """Return ``vectors`` as a contiguous ``(n, dim)`` float32 array or raise."""
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise InputError(
                f"{what}: expected shape (n, {self.dim}) to match the index, got {np.shape(vectors)}"
            )
        return np.ascontiguousarray(array)

    # Optional abilities. A retriever that lacks one says so when it is used; a
    # persistent gallery (facefit.gallery) needs all of them.

    def __len__(self) -> int:
        """How many items the index holds (removed items excluded)."""
        raise PluginError(f"retriever {self.name!r} does not report its size")

    def __bool__(self) -> bool:  # an empty index is still an index: len() must not decide
        return True

    def remove(self, labels: np.ndarray) -> None:
        """Remove the items with these labels; an unknown label is an :class:`InputError`."""
        raise PluginError(f"retriever {self.name!r} cannot remove items")

    def get_vectors(self, labels: np.ndarray) -> np.ndarray:
        """The stored ``(n, dim)`` vectors of these labels (to rebuild with another retriever)."""
        raise PluginError(f"retriever {self.name!r} cannot return its stored vectors")

    def params(self) -> dict[str, Any]:
        """Keyword options that recreate this retriever together with ``dim``.

        Galleries store them in their manifest, so a loaded index searches as it did
        when saved (e.g. hnswlib's ``ef``, which its own file does not keep).
        """
        return {}

    def save(self, directory: Path, stem: str) -> list[str]:
        """Write the index as files named ``stem.*`` in ``directory``; return their names.

        The caller makes the save durable and atomic (fsync, checksums, a manifest
        written last), so an implementation only writes its files.
        """
        raise PluginError(f"retriever {self.name!r} cannot be saved")

    def load(self, directory: Path, stem: str) -> None:
        """Fill this new, empty retriever from the files :meth:`save` wrote."""
        raise PluginError(f"retriever {self.name!r} cannot be loaded from files")


@dataclass(frozen=True)
class LossInputs:
    """What a training objective may look at for one batch.

    ``prediction`` is the model output, ``target`` what it should have been
    (noise or velocity), ``x0`` the clean images, ``x0_pred`` the model's estimate
    of them, ``timesteps`` the sampled diffusion steps.
    """

    prediction: torch.Tensor
    target: torch.Tensor
    x0: torch.Tensor | None = None
    x0_pred: torch.Tensor | None = None
    timesteps: torch.Tensor | None = None
    extra: dict[str, Any] | None = None


class Loss(ABC):
    """A training objective returning a scalar tensor."""

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        """The loss for one batch (a 0-dim tensor)."""
