"""Low-quality faces: degradations for training, and normalizing a given frame.

Training makes low-quality copies of aligned face crops on the fly, the way a
camera frame loses a face: blur (optics, motion), downscaling to a few pixels
(distance), sensor noise, JPEG re-encoding. :class:`Degradation` holds one set of
parameters and applies it; :func:`random_degradation` draws one from a seed, so the
same seed always gives the same copy::

    >>> d = random_degradation(seed=7)            # e.g. 16 px, blur 0.8, noise 4.1, JPEG 55
    >>> small = d.apply(face)                     # (16, 16, 3) uint8
    >>> lq = normalize_lq(small, 64)              # the generator's input: (64, 64, 3)

:func:`normalize_lq` brings any low-quality frame (a tiny crop, grey, non-square)
to the generator's input: an RGB square upsampled to the crop size.
:func:`lq_similarity` lets the loop check whether a candidate face, downscaled the
same way, agrees with the low-quality evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facefit.errors import InputError

__all__ = [
    "Degradation",
    "downscale",
    "lq_similarity",
    "normalize_lq",
    "random_degradation",
    "to_rgb_square",
]

LQ_SIZES = (8, 16, 32)
"""Sides, in pixels, of the low-quality copies used for training."""


def _rgb(image: np.ndarray, what: str) -> np.ndarray:
    from facefit.imaging.images import check_image

    array = check_image(image, what)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def to_rgb_square(image: np.ndarray, what: str = "low-quality image") -> np.ndarray:
    """RGB copy, centre-cropped to a square (face crops are centred on the face)."""
    array = _rgb(image, what)
    h, w = array.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return array[top : top + side, left : left + side].copy()


def downscale(image: np.ndarray, size: int) -> np.ndarray:
    """Area-average an image down to ``size``×``size`` (how a distant face is sampled)."""
    import cv2

    if size < 1:
        raise InputError(f"downscale: size must be positive, got {size}")
    square = to_rgb_square(image, "image to downscale")
    interpolation = cv2.INTER_AREA if square.shape[0] >= size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


@dataclass(frozen=True)
class Degradation:
    """One way of losing a face: blur → downscale → noise → JPEG.

    ``size`` is the side of the result in pixels; ``blur`` the Gaussian sigma in
    *output* pixels (so it means the same for any input size); ``noise`` the
    standard deviation of Gaussian noise in grey levels; ``jpeg_quality`` 1–100,
    or None for no re-encoding.
    """

    size: int = 16
    blur: float = 0.0
    noise: float = 0.0
    jpeg_quality: int | None = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InputError(f"degradation size must be positive, got {self.size}")
        if self.blur < 0 or self.noise < 0:
            raise InputError(f"degradation blur and noise must be >= 0 ({self.blur}, {self.noise})")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise InputError(f"JPEG quality must be 1–100, got {self.jpeg_quality}")

    def apply(self, image: np.ndarray, seed: int = 0) -> np.ndarray:
        """The degraded ``(size, size, 3)`` uint8 copy; ``seed`` fixes the noise."""
        import cv2

        square = to_rgb_square(image, "image to degrade")
        if self.blur > 0:
            sigma = self.blur * square.shape[0] / self.size
            square = cv2.GaussianBlur(square, (0, 0), sigma)
        small = downscale(square, self.size)
        if self.noise > 0:
            rng = np.random.default_rng(seed)
            noisy = small.astype(np.float32) + rng.normal(0.0, self.noise, small.shape)
            small = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        if self.jpeg_quality is not None:
            bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
                raise RuntimeError("JPEG encoding failed")
            small = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return small


def random_degradation(
    seed: int | np.random.Generator = 0,
    *,
    sizes: Sequence[int] = LQ_SIZES,
    max_blur: float = 1.0,
    max_noise: float = 8.0,
    jpeg_probability: float = 0.5,
    jpeg_range: tuple[int, int] = (30, 95),
) -> Degradation:
    """Draw a :class:`Degradation`: a size from ``sizes``, blur and noise uniform up to
    their maxima, and JPEG re-encoding with ``jpeg_probability`` at a quality in
    ``jpeg_range``. The same seed (or generator state) gives the same degradation.
    """
    if not sizes:
        raise InputError("random_degradation: sizes must not be empty")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    size = int(sizes[int(rng.integers(len(sizes)))])
    blur = float(rng.uniform(0.0, max_blur))
    noise = float(rng.uniform(0.0, max_noise))
    use_jpeg = bool(rng.random() < jpeg_probability)
    quality = int(rng.integers(jpeg_range[0], jpeg_range[1] + 1))
    return Degradation(size, round(blur, 4), round(noise, 4), quality if use_jpeg else None)


def normalize_lq(image: np.ndarray, size: int, *, method: str = "bicubic") -> np.ndarray:
    """A low-quality frame as the generator's input: ``(size, size, 3)`` uint8 RGB.

    Grey frames become RGB, non-square ones are centre-cropped to a square, and the
    result is resized to ``size`` (``method``: ``"bicubic"``, ``"bilinear"`` or
    ``"nearest"`` when enlarging; shrinking always averages areas).
    """
    import cv2

    methods = {
        "bicubic": cv2.INTER_CUBIC,
        "bilinear": cv2.INTER_LINEAR,
        "nearest": cv2.INTER_NEAREST,
    }
    if method not in methods:
        raise InputError(f"normalize_lq: unknown method {method!r}; known: {', '.join(methods)}")
    if size < 1:
        raise InputError(f"normalize_lq: size must be positive, got {size}")
    square = to_rgb_square(image)
    if square.shape[0] == size:
        return square
    interpolation = methods[method] if square.shape[0] < size else cv2.INTER_AREA
    return cv2.resize(square, (size, size), interpolation=interpolation)


def lq_similarity(candidate: np.ndarray, lq: np.ndarray) -> float:
    """How well a face agrees with a low-quality frame of it, in [0, 1] (1: identical).

    The candidate is area-downscaled to the frame's size and compared pixel by
    pixel: ``1 − mean |difference| / 255``. Both must be framed the same way
    (e.g. aligned crops).
    """
    small_lq = to_rgb_square(lq)
    small = downscale(candidate, small_lq.shape[0])
    difference = np.abs(small.astype(np.float32) - small_lq.astype(np.float32))
    return float(1.0 - difference.mean() / 255.0)
