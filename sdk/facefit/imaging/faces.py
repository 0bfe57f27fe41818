"""Faces in, aligned crops and identity embeddings out.

Two layers:

- pure functions — :data:`TEMPLATE_112` (the standard ArcFace/InsightFace 5-point
  template that OpenCV's ``FaceRecognizerSF.alignCrop`` uses), :func:`template`
  (the same template at any crop size: 64 and 128 for the generator),
  :func:`similarity_transform` (least-squares Umeyama) and :func:`align_landmarks`
  (warp an image so its 5 landmarks land on the template);
- :class:`FaceEmbedder`, a detector plus an encoder::

      from facefit import Registry
      from facefit.imaging.faces import FaceEmbedder

      embedder = FaceEmbedder.from_registry(Registry.load())   # yunet + sface
      crop = embedder.align(image, source="probe.jpg")         # (112, 112, 3) uint8
      crop64 = embedder.align(image, size=64)                  # generator crop
      vectors = embedder.embed_images([img1, img2])            # (2, 128), L2-normalized
      results = embedder.embed_files(paths)                    # per file: vector or error

No face found raises :class:`NoFaceError` (an :class:`~facefit.errors.InputError`)
naming the source; several faces take the largest unless ``require_single=True``.

**Sketches.** YuNet was trained on photos, yet finds a face on almost every FS2K
sketch (docs/faces.md); thin pencil lines are what it misses. For drawings already framed like a
portrait (FS2K, CUHK: one face filling the frame, roughly centred),
``sketch_fallback=True`` adds two steps when nothing is detected:

1. detect again on a blurred copy (Gaussian, σ = shorter side / 170, at least 1 px),
   which turns hatching into shading;
2. else place the landmarks at :data:`FRAMED_LANDMARKS` — the mean landmarks YuNet
   finds on the FS2K training sketches, relative to the image centre and shorter side.
   Such a crop is only as good as the framing (see ``benchmarks/results/faces.md`` for
   what it costs when forced on every FS2K development sketch).

:attr:`AlignedFace.alignment` says which step gave the landmarks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.errors import InputError
from facefit.imaging.images import DEFAULT_MAX_PIXELS, load_image

if TYPE_CHECKING:
    from facefit.config import PipelineConfig
    from facefit.interfaces import Detection, FaceDetector, FaceEncoder
    from facefit.registry import Registry

__all__ = [
    "FRAMED_LANDMARKS",
    "TEMPLATE_112",
    "AlignedFace",
    "EmbeddedFile",
    "FaceEmbedder",
    "MultipleFacesError",
    "NoFaceError",
    "align_landmarks",
    "framed_landmarks",
    "largest",
    "resize_aligned",
    "similarity_transform",
    "template",
]

TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],  # right eye (image left)
        [73.5318, 51.5014],  # left eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # right mouth corner
        [70.7299, 92.2041],  # left mouth corner
    ],
    dtype=np.float32,
)
"""Standard 5-point template for a 112×112 crop, in :class:`~facefit.interfaces.Detection` order."""
TEMPLATE_112.setflags(write=False)

FRAMED_LANDMARKS = np.array(
    [
        [-0.1325, -0.0566],
        [0.1134, -0.0554],
        [-0.0164, 0.0807],
        [-0.1060, 0.1903],
        [0.0947, 0.1903],
    ],
    dtype=np.float32,
)
"""Fallback landmarks for framed drawings: offsets from the image centre in units of
the image's shorter side (so square and oblong frames share one set).

Mean YuNet landmarks (score ≥ 0.6) over the 856 FS2K training sketches (the
person-disjoint development split of :mod:`facefit.datasets.splits` excluded) on which a face
was detected; the spread is about 0.05 of the shorter side
(``scripts/measure_framed_landmarks.py`` measures them). Measured this way, FS2K's
square and oblong sketches agree better than as fractions of width and height. See
``benchmarks/results/faces.md``; :func:`framed_landmarks` applies them.
"""
FRAMED_LANDMARKS.setflags(write=False)
FRAMED_LANDMARKS_SPLIT = "ea6ea0d9ac601bf0e2bbac34739cb7ad22c5480614b24076a4395281c1a7d49e"
"""The FS2K development-split fingerprint :data:`FRAMED_LANDMARKS` was measured under:
a test fails when the split changes, so the landmarks are re-measured on its training side."""


class NoFaceError(InputError):
    """No face was found in an image; the message names the image."""


class MultipleFacesError(InputError):
    """Several faces were found where exactly one was required."""


def framed_landmarks(height: int, width: int) -> np.ndarray:
    """:data:`FRAMED_LANDMARKS` placed in a ``height``×``width`` image, in pixels."""
    centre = np.float32([width / 2.0, height / 2.0])
    return centre + FRAMED_LANDMARKS * np.float32(min(height, width))


def template(size: int = 112) -> np.ndarray:
    """The 5-point template for a ``size``×``size`` crop (the 112 template scaled)."""
    if size < 8:
        raise InputError(f"crop size must be at least 8 pixels, got {size}")
    return TEMPLATE_112 * np.float32(size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` rotation + uniform scale + translation mapping ``src`` onto ``dst``.

    Least squares over all points (Umeyama 1991), never a reflection.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise InputError(
            f"similarity_transform: need two (n>=2, 2) point sets, got {src.shape}, {dst.shape}"
        )
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    if var_s < 1e-12:
        raise InputError("similarity_transform: the source points all coincide")
    cov = d_c.T @ s_c / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    scale = (sigma * d).sum() / var_s
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


def resize_aligned(crop: np.ndarray, size: int) -> np.ndarray:
    """An aligned crop resampled to ``size``×``size``; the template scales with it, so
    the result is the aligned crop at that size (area-averaged when shrinking)."""
    import cv2

    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    shrinking = crop.shape[0] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interpolation)


def align_landmarks(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp ``image`` so ``landmarks`` ``(5, 2)`` land on :func:`template` ``(size)``.

    Returns a ``(size, size, 3)`` uint8 crop (``(size, size)`` for a grey image);
    pixels outside the image are black, as in OpenCV's ``alignCrop``. A large
    reduction is done by area averaging first, so small crops do not alias.
    """
    import cv2

    image = np.asarray(image)
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    matrix = similarity_transform(landmarks, template(size))
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        # shrink by area averaging to about twice the crop's resolution, then warp
        factor = min(1.0, 2.0 * scale)
        h, w = image.shape[:2]
        small = cv2.resize(
            image,
            (max(1, round(w * factor)), max(1, round(h * factor))),
            interpolation=cv2.INTER_AREA,
        )
        fx, fy = small.shape[1] / w, small.shape[0] / h
        # cv2.resize maps pixel centres: x_small = (x + 0.5) * fx - 0.5
        small_landmarks = (landmarks + 0.5) * [fx, fy] - 0.5
        matrix = similarity_transform(small_landmarks, template(size))
        image = small
    crop = cv2.warpAffine(
        np.ascontiguousarray(image),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return crop


def largest(detections: Sequence[Detection]) -> Detection:
    """The detection with the largest box (ties: the higher score)."""
    return max(detections, key=lambda d: (d.area, d.score))


@dataclass(frozen=True)
class AlignedFace:
    """An aligned crop and how it was obtained."""

    crop: np.ndarray
    landmarks: np.ndarray
    """The 5 landmarks used, in the source image's pixels."""
    detection: Detection | None
    """The detection used; None when the landmarks were placed at FRAMED_LANDMARKS."""
    faces_found: int
    alignment: str = "detected"
    """``"detected"``, ``"detected-blurred"`` or ``"framed"`` (see the module docs)."""

    @property
    def fallback(self) -> bool:
        """True when the sketch fallback gave the landmarks (blurred retry or framed)."""
        return self.alignment != "detected"


@dataclass(frozen=True)
class EmbeddedFile:
    """One file's embedding, or why there is none (from :meth:`FaceEmbedder.embed_files`)."""

    path: str
    vector: np.ndarray | None
    error: str | None = None
    fallback: bool = False

    @property
    def ok(self) -> bool:
        return self.vector is not None


class FaceEmbedder:
    """Detect, align and embed faces with one detector and one encoder.

    ``sketch_fallback`` (default False) aligns images without a detected face at
    :data:`FRAMED_LANDMARKS` instead of raising :class:`NoFaceError`: use it for
    drawings already framed as portraits, never for photos of scenes.
    ``batch_size`` bounds how many crops go to the encoder at once.
    """

    def __init__(
        self,
        detector: FaceDetector,
        encoder: FaceEncoder,
        *,
        sketch_fallback: bool = False,
        batch_size: int = 64,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.detector = detector
        self.encoder = encoder
        self.sketch_fallback = sketch_fallback
        self.batch_size = max(1, int(batch_size))
        self.max_pixels = max_pixels

    @classmethod
    def from_registry(
        cls,
        registry: Registry,
        *,
        detector: str = "yunet",
        encoder: str = "sface",
        detector_options: dict[str, Any] | None = None,
        encoder_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> FaceEmbedder:
        """Build from plugin names (default ``yunet`` + ``sface``) in ``registry``
        (``Registry.load()`` for the installed plugins); ``options`` go to ``__init__``."""
        return cls(
            registry.create("face_detector", detector, **(detector_options or {})),
            registry.create("face_encoder", encoder, **(encoder_options or {})),
            **options,
        )

    @classmethod
    def from_config(
        cls, config: PipelineConfig, registry: Registry, **options: Any
    ) -> FaceEmbedder:
        """Build from a pipeline config's ``[face_detector]``/``[face_encoder]`` tables.

        A plugin whose name is a key of ``[weights]`` gets that file as its
        ``weights`` option unless its table sets one.
        """

        def plugin_options(kind: str) -> tuple[str, dict[str, Any]]:
            spec = config.components[kind]
            values = dict(spec.options)
            if "weights" not in values and spec.plugin in config.weights:
                values["weights"] = config.weights[spec.plugin]
            return spec.plugin, values

        detector, detector_options = plugin_options("face_detector")
        encoder, encoder_options = plugin_options("face_encoder")
        return cls.from_registry(
            registry,
            detector=detector,
            encoder=encoder,
            detector_options=detector_options,
            encoder_options=encoder_options,
            **options,
        )

    @property
    def dim(self) -> int:
        """Length of the embeddings."""
        return self.encoder.dim

    # -- alignment ------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in an RGB (or grey) image, best score first."""
        return self.detector.detect(_rgb(image, "<image>"))

    def locate(
        self,
        image: np.ndarray,
        *,
        size: int | None = None,
        source: str = "<image>",
        require_single: bool = False,
        sketch_fallback: bool | None = None,
    ) -> AlignedFace:
        """Like :meth:`align` but also returns the landmarks and detection used."""
        image = _rgb(image, source)
        size = size or self.encoder.input_size
        fallback = self.sketch_fallback if sketch_fallback is None else sketch_fallback
        detections = self.detector.detect(image)
        alignment = "detected"
        if not detections and fallback:
            detections, alignment = self.detector.detect(_soften(image)), "detected-blurred"
        if not detections:
            if not fallback:
                raise NoFaceError(
                    f"{source}: no face found; give a photo with a visible face "
                    f"(for a framed drawing, use sketch_fallback=True)"
                )
            landmarks = framed_landmarks(*image.shape[:2])
            crop = align_landmarks(image, landmarks, size)
            return AlignedFace(crop, landmarks, None, 0, "framed")
        if require_single and len(detections) > 1:
            raise MultipleFacesError(
                f"{source}: {len(detections)} faces found where one is required; "
                f"crop the image to the face of interest"
            )
        best = largest(detections)
        crop = align_landmarks(image, best.landmarks, size)
        return AlignedFace(crop, best.landmarks, best, len(detections), alignment)

    def align(
        self,
        image: np.ndarray,
        *,
        size: int | None = None,
        source: str = "<image>",
        require_single: bool = False,
        sketch_fallback: bool | None = None,
    ) -> np.ndarray:
        """The aligned ``(size, size, 3)`` uint8 RGB crop of the largest face in ``image``.

        ``size`` defaults to the encoder's input size (112). ``source`` names the
        image in errors. Raises :class:`NoFaceError` when no face is found (unless
        the sketch fallback is on) and :class:`MultipleFacesError` when
        ``require_single`` and several are found.
        """
        return self.locate(
            image,
            size=size,
            source=source,
            require_single=require_single,
            sketch_fallback=sketch_fallback,
        ).crop

    def align_file(self, path: str | os.PathLike[str], **options: Any) -> np.ndarray:
        """Load an image file (see :func:`facefit.imaging.images.load_image`) and :meth:`align` it."""
        image = load_image(path, max_pixels=self.max_pixels)
        return self.align(image, source=str(path), **options)

    # -- embedding ------------------------------------------------------------------------

    def embed_aligned(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embed aligned crops ``(N, S, S, 3)`` in batches → ``(N, dim)`` L2-normalized."""
        crops = np.asarray(crops) if not isinstance(crops, np.ndarray) else crops
        if crops.ndim == 3:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = [
            self.encoder.embed(crops[i : i + self.batch_size])
            for i in range(0, len(crops), self.batch_size)
        ]
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def embed_images(
        self,
        images: Iterable[np.ndarray],
        *,
        sources: Sequence[str] | None = None,
        require_single: bool = False,
    ) -> np.ndarray:
        """Detect, align and embed each image → ``(N, dim)``; raises on the first failure."""
        crops = []
        for i, image in enumerate(images):
            source = sources[i] if sources is not None else f"image {i}"
            crops.append(self.align(image, source=source, require_single=require_single))
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_aligned(np.stack(crops))

    def embed_files(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        require_single: bool = False,
        progress: bool = False,
    ) -> list[EmbeddedFile]:
        """Embed each file; a file that fails gets its error instead of stopping the rest.

        Files are loaded and aligned one by one and embedded in batches of
        ``batch_size``; results come back in the order of ``paths``.
        """
        paths = [str(p) for p in paths]
        results: list[EmbeddedFile | None] = [None] * len(paths)
        pending: list[tuple[int, np.ndarray, bool]] = []

        def flush() -> None:
            if not pending:
                return
            vectors = self.embed_aligned(np.stack([c for _, c, _ in pending]))
            for (index, _, used_fallback), vector in zip(pending, vectors):
                results[index] = EmbeddedFile(paths[index], vector, None, used_fallback)
            pending.clear()

        iterator: Iterable[int] = range(len(paths))
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc="embedding", unit="file")
        for index in iterator:
            path = paths[index]
            try:
                image = load_image(path, max_pixels=self.max_pixels)
                face = self.locate(image, source=path, require_single=require_single)
            except InputError as exc:
                results[index] = EmbeddedFile(path, None, str(exc))
                continue
            pending.append((index, face.crop, face.fallback))
            if len(pending) >= self.batch_size:
                flush()
        flush()
        return [r for r in results if r is not None]


def _soften(image: np.ndarray) -> np.ndarray:
    """A blurred copy in which a detector sees pencil hatching as shading."""
    import cv2

    sigma = max(1.0, min(image.shape[:2]) / 170.0)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _rgb(image: np.ndarray, source: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"{source}: expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise InputError(
            f"{source}: expected an (H, W, 3) RGB or (H, W) grey image, got {image.shape}"
        )
    return image
