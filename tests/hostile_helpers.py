"""Hostile inputs as files: what a careless user or a hostile tester hands facefit.

Shared by ``tests/test_hostile_inputs.py`` (one row per kind, per entry point) and
``benchmarks/fuzz_evidence.py`` (500 of them mixed with random bytes). Each maker
writes one file and returns its path; :data:`KINDS` says what each one is.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

DEMO = Path(__file__).resolve().parents[1] / "sdk" / "facefit" / "demo_data"
PHOTOS = sorted((DEMO / "gallery").glob("*.jpg"))
"""Aligned FS2K photo crops of the demo gallery (faces YuNet finds)."""

LONG_TEXT = "a man with a beard " * 600
"""An over-long description (11,400 characters)."""


def house(height: int = 200, width: int = 160) -> np.ndarray:
    """A line drawing of a house on white paper (portrait-shaped, plenty of ink, no face)."""
    import cv2

    page = np.full((height, width), 255, np.uint8)
    cv2.rectangle(page, (30, 90), (130, 180), 0, 2)
    cv2.line(page, (30, 90), (80, 40), 0, 2)
    cv2.line(page, (80, 40), (130, 90), 0, 2)
    cv2.rectangle(page, (70, 130), (90, 180), 0, 2)
    cv2.rectangle(page, (40, 105), (60, 125), 0, 2)  # a window
    return page


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def photo(index: int = 0) -> np.ndarray:
    with Image.open(PHOTOS[index % len(PHOTOS)]) as image:
        return np.asarray(image.convert("RGB"))


def _save(path: Path, image: Image.Image | np.ndarray, **options) -> Path:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(path, **options)
    return path


def write_house(path: Path, seed: int = 0) -> Path:
    return _save(path, house())


def write_noise(path: Path, seed: int = 0) -> Path:
    return _save(path, noise((200, 160, 3), seed))


def write_one_pixel(path: Path, seed: int = 0) -> Path:
    return _save(path, np.zeros((1, 1, 3), np.uint8))


def write_fifo(path: Path, seed: int = 0) -> Path:
    os.mkfifo(path)
    return path


def write_empty(path: Path, seed: int = 0) -> Path:
    path.write_bytes(b"")
    return path


def write_truncated(path: Path, seed: int = 0) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(photo(seed)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_grey16(path: Path, seed: int = 0) -> Path:
    """A face photo as a 16-bit grey PNG (full 16-bit range)."""
    grey = np.asarray(Image.fromarray(photo(seed)).convert("L")).astype(np.uint16) * 257
    return _save(path, Image.fromarray(grey))  # uint16 → mode I;16


def write_rgba(path: Path, seed: int = 0) -> Path:
    """A face photo with an alpha channel (opaque face, transparent corners)."""
    rgb = photo(seed)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:8, :8] = 0
    return _save(path, np.dstack([rgb, alpha]))


def write_cmyk(path: Path, seed: int = 0) -> Path:
    """A face photo as a CMYK JPEG (print workflows write these)."""
    return _save(path, Image.fromarray(photo(seed)).convert("CMYK"), format="JPEG")


def write_bomb(path: Path, seed: int = 0) -> Path:
    """A 400-byte PNG whose header claims 100,000 × 100,000 pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 100_001 * 2)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


def write_face(path: Path, seed: int = 0) -> Path:
    """A usable face photo (the control row)."""
    return _save(path, photo(seed))


KINDS = {
    # name: (maker, suffix, usable) — usable: a face facefit should accept and use
    "house": (write_house, ".png", False),
    "noise": (write_noise, ".png", False),
    "one-pixel": (write_one_pixel, ".png", False),
    "fifo": (write_fifo, ".jpg", False),
    "empty": (write_empty, ".png", False),
    "truncated": (write_truncated, ".jpg", False),
    "grey16": (write_grey16, ".png", True),
    "rgba": (write_rgba, ".png", True),
    "cmyk": (write_cmyk, ".jpg", True),
    "bomb": (write_bomb, ".png", False),
    "face": (write_face, ".png", True),
}


def write_kind(folder: Path, kind: str, seed: int = 0, stem: str | None = None) -> Path:
    """Write one hostile file of ``kind`` into ``folder`` (named after the kind)."""
    maker, suffix, _ = KINDS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    return maker(folder / f"{stem or kind}{suffix}", seed)
