"""Reading and writing images safely.

Every image that enters facefit from a file goes through :func:`load_image`: it
accepts JPEG, PNG, PGM/PPM, GIF (first frame), WebP, BMP and TIFF, applies the EXIF
orientation, turns grey, grey+alpha, RGBA, 16-bit and palette images into 8-bit
RGB, and refuses what it cannot trust — files that are truncated, are not images,
or have more pixels than ``max_pixels`` (decompression bombs included) — with an
:class:`~facefit.errors.InputError` naming the file.

Arrays follow the SDK's convention: ``uint8``, ``(H, W, 3)`` RGB, or ``(H, W)``
grey from :func:`load_grey`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facefit.errors import InputError
from facefit.files import atomic_file, open_regular

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "check_image",
    "load_grey",
    "load_image",
    "open_regular",
    "save_image",
    "to_rgb",
]

DEFAULT_MAX_PIXELS = 40_000_000
"""Largest image accepted by default (40 Mpx: any camera frame, not a bomb)."""

FORMATS = ("JPEG", "PNG", "PPM", "GIF", "WEBP", "BMP", "TIFF")
"""Pillow format names :func:`load_image` opens (PPM covers PGM and PBM too)."""

_SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".pgm": "PPM",
    ".ppm": "PPM",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def load_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as a ``(H, W, 3)`` ``uint8`` RGB array.

    The EXIF orientation is applied (the array is upright as a viewer shows it).
    Raises :class:`InputError` naming ``path`` when the file is missing, is not
    an image of a supported format, is truncated, or has more than
    ``max_pixels`` pixels.
    """
    with _open(path, max_pixels) as image:
        return to_rgb(image, source=str(path))


def load_grey(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as a ``(H, W)`` ``uint8`` grey array (ITU-R 601 luma).

    Same checks as :func:`load_image`; meant for sketches.
    """
    rgb = load_image(path, max_pixels=max_pixels)
    return np.asarray(Image.fromarray(rgb).convert("L"))


def to_rgb(image: Image.Image, *, source: str = "<image>") -> np.ndarray:
    """Convert an opened Pillow image (any mode) to an upright ``(H, W, 3)`` uint8 RGB array."""
    with contextlib.suppress(Exception):  # a malformed EXIF block must not lose the picture
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grey: scale the full range to 8 bits (Pillow's convert would clip)
        array = np.asarray(image).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(array * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        low, high = float(array.min(initial=0)), float(array.max(initial=0))
        scale = 255.0 / (high - low) if high > low else 0.0
        grey = np.clip(np.rint((array - low) * scale), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # composite on white: transparent parts of a drawing are paper, not black
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise InputError(f"{source}: could not be converted to an RGB image (shape {array.shape})")
    return np.ascontiguousarray(array)


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """``image`` as a uint8 ``(H, W)`` or ``(H, W, 3)`` array (one channel squeezed), or an
    :class:`InputError` naming ``what``: the check every image function makes first."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise InputError(f"{what}: expected a uint8 image, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise InputError(f"{what}: expected shape (H, W) or (H, W, 3), got {array.shape}")
    if min(array.shape[:2]) < 1:
        raise InputError(f"{what}: image is empty (shape {array.shape})")
    return array


def save_image(path: str | os.PathLike[str], image: np.ndarray, *, quality: int = 95) -> Path:
    """Write a ``(H, W, 3)`` RGB or ``(H, W)`` grey ``uint8`` array atomically.

    The format follows the suffix (.png, .jpg, .webp, .bmp, .pgm/.ppm, .tif). The
    file is written under a temporary name in the same folder and renamed, so a
    reader never sees half an image. Returns the path written.
    """
    path = Path(path)
    array = np.asarray(image)
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3))
    ):
        raise InputError(
            f"{path}: can only save uint8 (H, W) or (H, W, 3) arrays, got {array.dtype} {array.shape}"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unknown image suffix {path.suffix!r}; use one of {', '.join(sorted(_SAVE_FORMATS))}"
        )
    if path.suffix.lower() == ".pgm" and array.ndim == 3:
        array = np.asarray(Image.fromarray(array).convert("L"))
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:
        Image.fromarray(np.ascontiguousarray(array)).save(handle, format=fmt, **options)
    return path


class _open:
    """Open and fully decode an image file, translating every failure to InputError."""

    def __init__(self, path: str | os.PathLike[str], max_pixels: int) -> None:
        self.path = Path(path)
        self.max_pixels = int(max_pixels)
        self.image: Image.Image | None = None
        self.handle = None

    def __enter__(self) -> Image.Image:
        path = self.path
        if self.max_pixels < 1:
            raise InputError(f"{path}: max_pixels must be positive, got {self.max_pixels}")
        self.handle = open_regular(path)  # a FIFO must not hang the read
        if os.fstat(self.handle.fileno()).st_size == 0:
            self.__exit__()
            raise InputError(f"{path}: empty file (0 bytes); give an image file")
        try:
            with warnings.catch_warnings():
                # Pillow's process-wide MAX_IMAGE_PIXELS must not be changed for one call:
                # max_pixels is checked below from the header alone, before any decoding;
                # Pillow's hard limit (DecompressionBombError) stays as a second line.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(self.handle, formats=FORMATS)
                self.image = image
                if image.format not in FORMATS:
                    raise InputError(
                        f"{path}: unsupported image format {image.format}; "
                        f"use one of JPEG, PNG, PGM/PPM, GIF, WebP, BMP, TIFF"
                    )
                width, height = image.size
                if width < 1 or height < 1:
                    raise InputError(f"{path}: image is empty ({width}×{height})")
                if width * height > self.max_pixels:
                    raise InputError(_too_big(path, width, height, self.max_pixels))
                image.seek(0)  # GIF/WebP/TIFF: the first frame
                image.load()  # decode now: a truncated file fails here, not later
        except InputError:
            self.__exit__()
            raise
        except Image.DecompressionBombError as exc:
            self.__exit__()
            raise InputError(f"{path}: refused as a possible decompression bomb ({exc})") from None
        except UnidentifiedImageError:
            self.__exit__()
            raise InputError(
                f"{path}: not an image file, or a format facefit cannot read "
                f"(JPEG, PNG, PGM/PPM, GIF, WebP, BMP, TIFF)"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            self.__exit__()
            raise InputError(
                f"{path}: damaged or truncated image ({type(exc).__name__}: {exc})"
            ) from None
        return image

    def __exit__(self, *exc: object) -> None:
        if self.image is not None:
            self.image.close()
            self.image = None
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _too_big(path: Path, width: int, height: int, max_pixels: int) -> str:
    return (
        f"{path}: image is {width}×{height} = {width * height:,} pixels, more than the limit "
        f"of {max_pixels:,}; resize it to at most {max_pixels:,} pixels (in Python, "
        "load_image(..., max_pixels=N) raises the limit for a trusted file)"
    )
