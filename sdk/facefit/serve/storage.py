"""Content-addressed, write-once file storage, and validation of uploaded evidence.

A file is stored under its own sha256 (``blobs/ab/abcdef….bin``), written to a
temporary name and renamed into place, then made read-only. The same bytes are
stored once, and a stored file is never modified: its name is its checksum,
which :meth:`BlobStore.verify` recomputes.

An upload is checked before anything is stored: its size against
``max_upload_bytes`` (counted while reading, not trusted from a header), then its
content through :func:`facefit.imaging.images.load_image` — the format is sniffed from
the bytes, never from the file name, and decompression bombs, truncated files
and non-images are refused with the same messages as on the command line.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from facefit.errors import InputError
from facefit.files import atomic_write_bytes

__all__ = ["BlobStore", "CheckedImage", "check_image", "check_text", "read_limited"]

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MIN_SIDE = 8
MAX_TEXT = 2000


class BlobStore:
    """Files by sha256 under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where the file with this checksum lives (refuses anything but a sha256)."""
        if not SHA256.match(sha256 or ""):
            raise InputError(f"{sha256!r} is not a sha256 checksum")
        return self.root / sha256[:2] / f"{sha256}.bin"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its sha256."""
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        if target.is_file():
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data, mode=0o444)
        return sha256

    def put_png(self, image: np.ndarray) -> str:
        """Store an image array as PNG; return its sha256."""
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
        return self.put(buffer.getvalue())

    def read(self, sha256: str) -> bytes:
        path = self.path(sha256)
        if not path.is_file():
            raise InputError(f"stored file {sha256} is missing from {self.root}")
        return path.read_bytes()

    def verify(self, sha256: str) -> bool:
        """Whether the stored file still has the checksum it is named by."""
        return hashlib.sha256(self.read(sha256)).hexdigest() == sha256


def read_limited(stream: BinaryIO, limit: int, name: str) -> bytes:
    """Read a whole upload, refusing it as soon as it passes ``limit`` bytes."""
    chunks, total = [], 0
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise InputError(
                f"{name}: larger than the upload limit of {limit // (1024 * 1024)} MiB; "
                "send a smaller file (a face needs no more than a few megapixels)"
            )
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise InputError(f"{name}: the file is empty")
    return data


@dataclass(frozen=True)
class CheckedImage:
    """An upload that decoded as an image: its pixels and what Pillow found it to be."""

    image: np.ndarray
    media_type: str


def check_image(data: bytes, name: str, *, max_pixels: int) -> CheckedImage:
    """Decode an uploaded image the way the CLI does, or raise InputError naming it."""
    from PIL import Image

    from facefit.imaging.images import load_image

    safe = re.sub(r"[^\w.\-]+", "_", Path(name).name)[:80] or "upload"
    with tempfile.TemporaryDirectory(prefix="facefit-upload-") as folder:
        path = Path(folder) / "upload"  # no suffix: nothing trusts the name
        path.write_bytes(data)
        try:
            image = load_image(path, max_pixels=max_pixels)
            with Image.open(path) as opened:
                media_type = Image.MIME.get(opened.format or "", "application/octet-stream")
        except InputError as exc:
            raise InputError(str(exc).replace(str(path), safe)) from None
    if min(image.shape[:2]) < MIN_SIDE:
        raise InputError(
            f"{safe}: {image.shape[1]}×{image.shape[0]} pixels is too small to hold a face "
            f"(at least {MIN_SIDE} pixels a side)"
        )
    return CheckedImage(image, media_type)


def check_text(text: str | None, name: str = "description") -> str:
    """A witness's description: non-empty, at most 2,000 characters, whitespace collapsed."""
    words = " ".join((text or "").split())
    if not words:
        raise InputError(f"{name}: empty; write what the witness said about the face")
    if len(words) > MAX_TEXT:
        raise InputError(f"{name}: {len(words)} characters; keep it under {MAX_TEXT}")
    return words
