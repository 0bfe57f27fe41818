"""Checks on what callers pass a gallery; each failure is a :class:`GalleryError` naming the input."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from facefit.gallery.errors import EmptyGalleryError, EncoderMismatchError, GalleryError
from facefit.gallery.manifest import EncoderInfo

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def checked_vectors(vectors: Any, encoder: EncoderInfo, what: str) -> np.ndarray:
    """``(n, dim)`` float32 embeddings of ``encoder``, none zero or non-finite."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != encoder.dim:
        raise GalleryError(
            f"{what}: expected shape (n, {encoder.dim}) — embeddings of this gallery's "
            f"encoder {encoder} — got {np.shape(vectors)}"
        )
    norms = np.linalg.norm(array, axis=1)
    if not np.isfinite(norms).all() or (norms < 1e-12).any():
        raise GalleryError(f"{what}: a vector is zero or not finite; pass encoder embeddings")
    return array


def one_query(query: Any, dim: int) -> np.ndarray:
    """One embedding as a ``(1, dim)`` array."""
    query = np.asarray(query)
    if query.ndim == 2 and len(query) == 1:
        return query
    if query.ndim != 1:
        raise GalleryError(
            f"query: expected one {dim}-d embedding, got shape {query.shape} "
            "(use search_many for several)"
        )
    return query[None]


def check_k(k: Any, available: int, what: str, where: object) -> None:
    """``k`` must be a positive integer no larger than what the gallery holds."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise GalleryError(f"k must be a positive integer, got {k!r}")
    if available == 0:
        raise EmptyGalleryError(
            f"gallery {where} is empty: add faces (`facefit gallery add`) before searching"
        )
    if k > available:
        raise GalleryError(
            f"k={k} is larger than the gallery ({available} {what}); ask for at most {available}"
        )


def check_encoder(stored: EncoderInfo, given: EncoderInfo, where: object) -> None:
    """Refuse embeddings of another encoder (name, version or dimension)."""
    if stored != given:
        raise EncoderMismatchError(
            f"gallery {where} was built with encoder {stored}, not {given}: embeddings of "
            f"different encoders are not comparable. Search it with {stored.name!r}, or "
            f"build a new gallery with `facefit gallery build --encoder {given.name}`"
        )


def checked_sha256s(values: list[Any]) -> list[Any]:
    for i, digest in enumerate(values):
        if digest is not None and not (isinstance(digest, str) and _SHA256.match(digest)):
            raise GalleryError(f"sha256s[{i}]: expected 64 lowercase hex digits, got {digest!r}")
    return values


def checked_names(names: list[Any], n: int) -> list[str]:
    if len(names) != n:
        raise GalleryError(f"identities: got {len(names)} names for {n} vectors")
    out = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise GalleryError(f"identities[{i}]: expected a non-empty name, got {name!r}")
        out.append(name.strip())
    return out


def per_face(values: Sequence[Any] | None, n: int, what: str, default: Any = None) -> list[Any]:
    if values is None:
        return [default] * n
    values = list(values)
    if len(values) != n:
        raise GalleryError(f"{what}: got {len(values)} values for {n} faces")
    return values
