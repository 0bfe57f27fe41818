"""Enrol a benchmark's gallery with one identity encoder and score probes against it.

Scores are exact: every probe is compared with every gallery image (cosine) and an
identity's score is the best of its images — the fusion :mod:`facefit.gallery` uses
for identity search. An evaluation needs the whole probe × identity matrix (TAR at
a FAR needs every impostor score), which an approximate top-k search would not give.

A gallery photo without a detectable face is listed in :attr:`EnrolledGallery.failures`
and left out; an identity left with no photo scores ``-inf`` (it can never be found),
so a broken gallery costs rank, never inflates it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.errors import InputError
from facefit.evaluation.manifest import Manifest
from facefit.imaging.faces import FaceEmbedder

if TYPE_CHECKING:
    from facefit.gallery import GalleryIndex

__all__ = ["EnrolledGallery", "enrol"]


@dataclass(frozen=True)
class EnrolledGallery:
    """Gallery embeddings grouped by identity (enrolled identities first, then distractors)."""

    identities: tuple[str, ...]
    image_paths: tuple[str, ...]
    """Manifest-relative path of each embedded image, grouped by identity."""
    vectors: np.ndarray
    """``(n_images, dim)`` L2-normalized, in the order of :attr:`image_paths`."""
    bounds: np.ndarray
    """``(n_identities + 1,)``: identity ``j`` owns images ``bounds[j]:bounds[j+1]``."""
    failures: tuple[tuple[str, str], ...]
    """``(path, error)`` of each gallery photo that could not be embedded."""
    encoder: str
    seconds: float

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def column(self, identity: str) -> int:
        """The score column of an identity."""
        try:
            return self._index[identity]
        except KeyError:
            raise InputError(f"identity {identity!r} is not in the gallery") from None

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.identities)}

    def scores(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Identity scores ``(n, n_identities)`` and the best image of each ``(n, n_identities)``.

        ``queries`` are ``(n, dim)`` L2-normalized vectors; an identity without images
        scores ``-inf`` and has best image ``-1``.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise InputError(f"queries have dimension {queries.shape[1]}, the gallery {self.dim}")
        sims = queries @ self.vectors.T
        n_ids = len(self.identities)
        scores = np.full((len(queries), n_ids), -np.inf, dtype=np.float64)
        best = np.full((len(queries), n_ids), -1, dtype=np.int64)
        for j in range(n_ids):
            start, stop = self.bounds[j], self.bounds[j + 1]
            if stop > start:
                block = sims[:, start:stop]
                arg = block.argmax(axis=1)
                best[:, j] = start + arg
                scores[:, j] = block[np.arange(len(queries)), arg]
        return scores, best

    def to_gallery_index(self, encoder: Any, *, registry: Any = None) -> GalleryIndex:
        """The same faces in a :class:`~facefit.gallery.GalleryIndex` (exact search).

        For code that searches a gallery the way a deployment does (the generating
        modes' pipeline); ``encoder`` is the :class:`~facefit.interfaces.FaceEncoder`
        that made the vectors, recorded so the index refuses any other.
        """
        from facefit.gallery import GalleryIndex

        index = GalleryIndex.create(encoder, retriever="exact", registry=registry)
        identities = np.repeat(np.arange(len(self.identities)), np.diff(self.bounds))
        index.add(
            self.vectors,
            [self.identities[j] for j in identities],
            sources=list(self.image_paths),
        )
        return index


def enrol(manifest: Manifest, embedder: FaceEmbedder, *, progress: bool = False) -> EnrolledGallery:
    """Detect, align and embed every gallery and distractor photo of ``manifest``."""
    start = time.perf_counter()
    images = manifest.full_gallery()
    results = embedder.embed_files([manifest.path(g.path) for g in images], progress=progress)
    identities = list(manifest.identities)
    identities += [g.identity for g in images if g.identity not in set(manifest.identities)]
    identities = list(dict.fromkeys(identities))
    per_identity: dict[str, list[tuple[str, np.ndarray]]] = {name: [] for name in identities}
    failures = []
    for image, result in zip(images, results):
        if result.ok:
            per_identity[image.identity].append((image.path, result.vector))
        else:
            failures.append((image.path, result.error or "could not be embedded"))
    paths, vectors, bounds = [], [], [0]
    for name in identities:
        for path, vector in per_identity[name]:
            paths.append(path)
            vectors.append(vector)
        bounds.append(len(paths))
    if not vectors:
        raise InputError(
            f"benchmark {manifest.name!r}: no gallery photo could be embedded "
            f"(first error: {failures[0][1] if failures else 'none'})"
        )
    return EnrolledGallery(
        identities=tuple(identities),
        image_paths=tuple(paths),
        vectors=np.stack(vectors).astype(np.float32),
        bounds=np.asarray(bounds, dtype=np.int64),
        failures=tuple(failures),
        encoder=embedder.encoder.name,
        seconds=time.perf_counter() - start,
    )
