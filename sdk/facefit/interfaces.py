"""The SDK's vocabulary: small base classes a plugin implements.

Each class describes its implementation with class attributes (``name`` and the
shapes a caller needs to know up front) and has one abstract method; everything
else is concrete convenience built on that method. Plugins register subclasses
(or factories returning instances) through the hooks in :mod:`facefit.hookspecs`.

Everything the host gives a plugin and may ask of it is declared here:

- **host options**: the keyword options facefit passes to a factory besides the
  user's own, listed per kind in :mod:`facefit.kinds` (a conditioner may take the
  generator's ``image_size``, a sampler its ``generator``, a backend its ``model``).
  An implementation names those it takes in ``host_options``; nothing else is
  passed, and the host never inspects a signature to decide.
- **optional abilities**: a class attribute says whether an implementation has one
  (``Sampler.batches``, ``Sampler.reports_steps``, ``Retriever.search_breadth``), and
  the base class gives the method a default that refuses clearly. The host reads
  the declaration; it never probes with ``hasattr``.

Heavy libraries (torch, onnxruntime, cv2) are imported inside methods, so that
listing plugins stays fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from facefit.errors import InputError, PluginError
from facefit.types import Condition, Evidence

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

    import torch

__all__ = [
    "Conditioner",
    "DatabaseRetriever",
    "DenoiserBackend",
    "Detection",
    "FaceDetector",
    "FaceEncoder",
    "Loss",
    "LossInputs",
    "Retriever",
    "Sampler",
    "SearchBreadth",
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
            f"got {images.dtype} {images.shape}; align faces first (facefit.imaging.faces.align)"
        )
    return images


class FaceEncoder(ABC):
    """Maps aligned face crops to identity embeddings (SFace, dlib, AdaFace, CLIP…).

    ``input_size`` is the side of the aligned square crop the encoder expects;
    embeddings are L2-normalized ``float32`` vectors of length ``dim``, compared
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
        """Validate the crops, embed them and L2-normalize the result."""
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
    pooled: np.ndarray  # (N, dim) float32, L2-normalized


class TextEncoder(ABC):
    """Encodes descriptions (MiniLM, CLIP text)."""

    name: ClassVar[str]
    dim: ClassVar[int]
    num_tokens: ClassVar[int]

    @abstractmethod
    def encode(self, texts: list[str]) -> TextEmbedding:
        """Encode a batch of texts."""


class SketchExtractor(ABC):
    """Turns a face photo into a line drawing, and normalizes real sketches the same way."""

    name: ClassVar[str]

    @abstractmethod
    def extract(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB photo → ``(H, W)`` uint8 drawing (dark lines on white)."""


class Conditioner(ABC):
    """Encodes one modality of :class:`~facefit.types.Evidence` into a :class:`Condition`.

    ``num_tokens``/``dim`` give the fixed token shape (0 when the conditioner makes
    no tokens); ``channels`` the depth of its spatial map (0 when none), at the
    generator's ``image_size``. Fixed shapes let compiled runtimes use static graphs.

    The pipeline creates one conditioner per modality and passes the host options
    it names in ``host_options`` (see :data:`facefit.kinds.KINDS`): ``image_size``
    (the generator's), ``registry`` (to create encoders by name), ``encoder`` (the
    generator's text or identity encoder, by name or as an instance) and
    ``detector`` (the pipeline's face detector, by name).
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    num_tokens: ClassVar[int] = 0
    dim: ClassVar[int] = 0
    channels: ClassVar[int] = 0
    host_options: ClassVar[tuple[str, ...]] = ()
    """The host options this conditioner's factory takes (a subset of the kind's)."""
    image_size: int = 64
    encoder: Any = None
    """The encoder the evidence is embedded with, or None. A ``reference`` conditioner
    must set it to its :class:`FaceEncoder`: the pipeline embeds the candidates that
    guide the next round with it, so they land in the generator's identity space."""

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

    def aligned(self, face: np.ndarray) -> np.ndarray:
        """For a ``reference`` conditioner: ``face`` as the aligned crop its :attr:`encoder`
        takes. The pipeline aligns the gallery face that guides the next round with it."""
        raise PluginError(
            f"conditioner {self.name!r} does not align faces (only a reference conditioner must)"
        )


class DenoiserBackend(ABC):
    """Runs the denoiser with the UNet's call: ``(sample, timestep, tokens) → noise``.

    Backends (eager torch, torch.compile, ONNX Runtime, TensorRT) wrap a model and
    must give the same result within a stated tolerance. ``load``/``close`` frame
    the life cycle of whatever the backend holds (engines, graphs, buffers). The
    host passes the generator's denoiser as ``model`` when ``host_options`` names it.
    """

    name: ClassVar[str]
    host_options: ClassVar[tuple[str, ...]] = ()
    """The host options the backend's factory takes: ``("model",)`` to be given the
    generator's denoiser (a ``torch.nn.Module`` with the UNet's call)."""
    thread_safe: ClassVar[bool] = False
    """Whether threads may call one instance at once (no buffers shared between calls);
    a pipeline shared by threads otherwise samples one run at a time."""

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
    """Turns conditions into images with a scheduler driving a denoiser backend.

    The host passes the generator (``generator``, a
    :class:`~facefit.generator.FaceGenerator`) when ``host_options`` names it: its
    noise schedule and condition projections are the sampler's to use.
    """

    name: ClassVar[str]
    host_options: ClassVar[tuple[str, ...]] = ()
    """The host options the sampler's factory takes: ``("generator",)`` for a sampler
    that drives facefit's generator."""
    reports_steps: ClassVar[bool] = False
    """Whether :meth:`sample` takes ``on_step`` and calls it after every step. The
    pipeline then reports progress and checks cancellation per step; otherwise per
    round."""
    batches: ClassVar[bool] = False
    """Whether :meth:`denoise` runs a batch whose items come from different evidence
    (``facefit augment`` needs it to sample many identities at once)."""
    thread_safe: ClassVar[bool] = False
    """Whether threads may sample with one instance at once (no state kept between
    calls); a pipeline shared by threads otherwise samples one run at a time."""

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
        """Generate ``(num_images, H, W, 3)`` uint8 RGB images.

        A sampler that declares ``reports_steps`` also takes ``on_step``, a callable
        given the number of steps done after each step; an exception it raises stops
        sampling (that is how the pipeline cancels).
        """

    def denoise(
        self,
        denoiser: DenoiserBackend,
        spatial: torch.Tensor,
        tokens: torch.Tensor,
        noise: torch.Tensor,
        *,
        steps: int,
        guidance: float,
        seed: int,
        on_step: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """The guided step loop over a batch of ``N = len(noise)`` images → x₀ in [-1, 1].

        Only for a sampler that declares ``batches``. ``spatial`` and ``tokens`` are
        the generator's encoded conditions, one row per image: the conditional rows,
        then (when ``guidance`` is not 1) the null rows in the same order.
        """
        raise PluginError(
            f"sampler {self.name!r} cannot denoise a batch of different evidence "
            "(it does not declare `batches`); use ddim, ddpm or dpm-solver"
        )


@dataclass(frozen=True)
class SearchBreadth:
    """How an approximate retriever trades speed for recall.

    ``option`` names the attribute (and constructor option) holding the breadth;
    ``scale`` says what its values are: ``"count"``, a whole number of candidates
    looked at (hnswlib's ``ef``, tuned by doubling then bisecting), or ``"share"``,
    a share of the index in (0, 1] (ScaNN's ``leaves_to_search``, tuned over
    :data:`facefit.gallery.tuning.LEAF_SHARES`).
    """

    option: str
    scale: Literal["count", "share"]


class Retriever(ABC):
    """Nearest-neighbour search over L2-normalized embeddings by cosine similarity.

    Items are addressed by non-negative integer labels chosen by the caller. The
    helpers in :mod:`facefit.vectors` check vectors, labels and ``k`` the way the
    built-ins do.
    """

    name: ClassVar[str]
    keeps_records: ClassVar[bool] = False
    """True for a :class:`DatabaseRetriever`, which holds the whole gallery itself."""
    search_breadth: ClassVar[SearchBreadth | None] = None
    """The tunable search breadth of an approximate retriever; None for an exact one.
    Galleries tune it (:meth:`facefit.gallery.GalleryIndex.tune`) through
    :attr:`breadth` and :meth:`set_breadth`. Where it depends on the options (a
    Milvus index type with or without ``ef``), make it a property."""
    train_at: int | None = None
    """For a retriever that trains its index: how many items it needs first."""
    recall_target: float | None = None
    """For a retriever that trains its index: the recall it re-tunes its breadth to
    after each training (the gallery's tuning sets it)."""

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
        from facefit.vectors import check_vectors

        return check_vectors(vectors, self.dim, what)

    # Optional abilities. A retriever that lacks one says so when it is used; a
    # persistent gallery (facefit.gallery) needs all of them.

    @property
    def trained(self) -> bool:
        """Whether the index searches with its trained structure. One that trains
        itself (``train_at``) searches exactly until then: nothing to tune yet."""
        return True

    @property
    def breadth(self) -> float | None:
        """The current search breadth (see :attr:`search_breadth`); None when exact."""
        spec = self.search_breadth
        return None if spec is None else getattr(self, spec.option)

    def set_breadth(self, value: float) -> None:
        """Set the search breadth; an exact retriever refuses."""
        spec = self.search_breadth
        if spec is None:
            raise PluginError(
                f"retriever {self.name!r} searches exactly: it has no search breadth to set"
            )
        setattr(self, spec.option, value)

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


class DatabaseRetriever(Retriever):
    """A retriever that keeps a whole gallery in a database: vectors, identities,
    provenance and the gallery's description (``milvus``).

    Such a gallery is opened by a URL whose scheme is the plugin's name
    (``milvus://host:19530/mugshots``) and has no local files; see
    :mod:`facefit.gallery.remote` for how a gallery uses these methods. ``location``
    (the URL, no secrets in it) and ``where`` (the same in words) are read-only
    properties.
    """

    keeps_records: ClassVar[bool] = True

    @property
    @abstractmethod
    def location(self) -> str:
        """This gallery's URL, without secrets."""

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the data lives, in words (for messages and ``facefit gallery info``)."""

    @classmethod
    @abstractmethod
    def stored_gallery(cls, uri: str, **options: Any) -> dict[str, Any] | None:
        """The stored description (``encoder``, ``retriever_params``, ``next_label``,
        ``generation``, ``created``, ``saved``), or None where there is no such gallery."""

    @abstractmethod
    def start_gallery(self, encoder: dict[str, Any]) -> None:
        """Record the face encoder of a new, empty gallery."""

    @abstractmethod
    def add_faces(self, labels: np.ndarray, vectors: np.ndarray, records: Sequence[Any]) -> None:
        """Add new faces with their :class:`~facefit.gallery.store.FaceRecord`, all or nothing."""

    @abstractmethod
    def face_records(self) -> Iterable[Any]:
        """Every face of the gallery (its ``FaceRecord``), without vectors, by label."""

    @abstractmethod
    def commit(self, **fields: Any) -> dict[str, Any]:
        """Store the search options and ``fields``, count a generation, make writes durable."""


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
