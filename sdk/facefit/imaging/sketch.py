"""Line drawings: photo → simple sketch, real sketches normalized, and their agreement.

Three functions serve training and the loop:

- :func:`simple_sketch` turns a photo into a pencil-like line drawing (dark lines on
  white) with no learned weights: local contrast equalisation (CLAHE) followed by
  the eXtended Difference of Gaussians (XDoG, Winnemöller et al. 2012). It makes
  sketch conditions for photos that have no drawing (CelebA) and lets the loop
  draw a candidate face to compare it with the witness's sketch.
- :func:`normalize_sketch` brings a real, scanned or photographed sketch to the
  same convention: grey, dark lines on white paper, contrast stretched, optionally
  cropped and resized.
- :func:`sketch_similarity` scores how well two drawings of the same framing agree:
  the correlation of their blurred ink maps, in [-1, 1]. Blurring makes it forgive
  lines drawn a few pixels apart and differences in line weight.

Defaults were chosen on FS2K training pairs; how well a photo's simple sketch agrees
with its own artist sketch and with other people's is measured by
``benchmarks/sketch_fs2k.py`` (``benchmarks/results/sketch_fs2k.md``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from facefit.errors import InputError

__all__ = ["normalize_sketch", "simple_sketch", "sketch_similarity", "to_grey"]

REFERENCE_SIDE = 256
"""Image side at which the ``sigma`` of :func:`simple_sketch` is given in pixels."""


def to_grey(image: np.ndarray, what: str = "image") -> np.ndarray:
    """A ``(H, W)`` uint8 grey copy of a grey or RGB uint8 image."""
    import cv2

    from facefit.imaging.images import check_image

    array = check_image(image, what)
    if array.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2GRAY)
    return array.copy()


def simple_sketch(
    image: np.ndarray,
    *,
    sigma: float = 0.8,
    k: float = 1.6,
    tau: float = 0.98,
    epsilon: float = 0.0,
    phi: float = 150.0,
    clahe: float = 2.0,
) -> np.ndarray:
    """A ``(H, W)`` uint8 line drawing of a photo: dark lines on white paper.

    ``sigma`` is the inner Gaussian's width in pixels for a 256-pixel image and
    scales with the image (never below 0.5 px), so a 64-pixel crop and a 512-pixel
    photo give the same drawing up to resolution. ``k`` is the ratio of the outer
    Gaussian, ``tau`` the weight of the outer Gaussian (below 1 lets dark regions
    such as hair shade a little), ``epsilon`` the threshold and ``phi`` its
    sharpness. ``clahe`` is the clip limit of the contrast equalisation that keeps
    features visible in dark or flat lighting (0 turns it off).
    """
    import cv2

    grey = to_grey(image, "photo for simple-sketch")
    if sigma <= 0 or k <= 1 or phi <= 0:
        raise InputError(f"simple-sketch: need sigma > 0, k > 1, phi > 0 (got {sigma}, {k}, {phi})")
    if clahe > 0:
        grey = cv2.createCLAHE(clipLimit=float(clahe), tileGridSize=(4, 4)).apply(grey)
    scale = max(grey.shape) / REFERENCE_SIDE
    inner = max(sigma * scale, 0.5)
    values = grey.astype(np.float32) / 255.0
    narrow = cv2.GaussianBlur(values, (0, 0), inner)
    wide = cv2.GaussianBlur(values, (0, 0), inner * k)
    difference = narrow - tau * wide
    paper = np.where(difference >= epsilon, 1.0, 1.0 + np.tanh(phi * (difference - epsilon)))
    return np.clip(np.rint(paper * 255.0), 0, 255).astype(np.uint8)


Box = tuple[int, int, int, int]


def normalize_sketch(
    image: np.ndarray,
    size: int | None = None,
    *,
    box: Box | None = None,
    invert: bool | Literal["auto"] = "auto",
    low: float = 1.0,
    high: float = 95.0,
) -> np.ndarray:
    """A real sketch as ``(H, W)`` uint8: grey, dark lines on white, full contrast.

    ``box`` ``(x, y, w, h)`` crops first (e.g. the face box, or a fixed crop of an
    already-framed drawing). ``invert="auto"`` flips a drawing with light lines on
    a dark ground (its median is dark). Contrast is stretched so that the ``low``
    percentile becomes black and the ``high`` percentile (the paper: most of a
    sketch is paper) white. ``size`` pads the drawing with white to a square and
    resizes it to ``size``×``size``.
    """
    import cv2

    grey = to_grey(image, "sketch")
    if box is not None:
        x, y, w, h = (int(v) for v in box)
        height, width = grey.shape
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise InputError(f"sketch crop box {box} does not fit the {width}×{height} image")
        grey = grey[y : y + h, x : x + w]
    if invert == "auto":
        invert = bool(np.median(grey) < 128)
    if invert:
        grey = 255 - grey
    if not 0 <= low < high <= 100:
        raise InputError(f"normalize_sketch: need 0 <= low < high <= 100, got {low}, {high}")
    lo, hi = np.percentile(grey, [low, high])
    if hi - lo >= 1:
        stretched = (grey.astype(np.float32) - lo) * (255.0 / (hi - lo))
        grey = np.clip(np.rint(stretched), 0, 255).astype(np.uint8)
    if size is not None:
        if size < 1:
            raise InputError(f"normalize_sketch: size must be positive, got {size}")
        height, width = grey.shape
        side = max(height, width)
        top, left = (side - height) // 2, (side - width) // 2
        grey = cv2.copyMakeBorder(
            grey,
            top,
            side - height - top,
            left,
            side - width - left,
            cv2.BORDER_CONSTANT,
            value=255,
        )
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
        grey = cv2.resize(grey, (size, size), interpolation=interpolation)
    return grey


def sketch_similarity(a: np.ndarray, b: np.ndarray, *, size: int = 64, blur: float = 1.5) -> float:
    """Agreement of two drawings of the same framing, in [-1, 1] (1: same ink layout).

    Both are made grey, resized to ``size``×``size``, turned into ink maps
    (255 − value), blurred with a Gaussian of ``blur`` pixels at that size and
    compared by zero-mean normalized cross-correlation. A blank drawing agrees
    with nothing (0.0). Faces should be aligned the same way (e.g. both the
    generator's crop), since the score compares positions.
    """
    import cv2

    maps = []
    for image, what in ((a, "first sketch"), (b, "second sketch")):
        grey = to_grey(image, what)
        interpolation = cv2.INTER_AREA if max(grey.shape) > size else cv2.INTER_LINEAR
        small = cv2.resize(grey, (size, size), interpolation=interpolation)
        ink = 255.0 - small.astype(np.float32)
        if blur > 0:
            ink = cv2.GaussianBlur(ink, (0, 0), blur)
        maps.append(ink - ink.mean())
    energy = float(np.sqrt((maps[0] ** 2).sum() * (maps[1] ** 2).sum()))
    if energy < 1e-6:
        return 0.0
    return float((maps[0] * maps[1]).sum() / energy)
