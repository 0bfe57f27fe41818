"""Synthetic galleries: embeddings clustered like identities, for tests and benchmarks.

Real face embeddings come in groups (one per person: several photos) spread over
the sphere, more along some directions than others, and all leaning one common way
(SFace's mean embedding has norm ≈ 0.3). :func:`clustered_faces` draws identity
centres from a Gaussian whose variance falls off as ``(i + 1) ** -decay`` along the
axes plus a common ``offset``; each face is its centre plus isotropic noise of norm
``spread`` (varied per face by ``quality``: some photos are worse), normalized.
``probes`` are fresh faces of gallery identities (a new photo of someone enrolled).

The defaults are fitted to SFace on the CelebA subset of ``../shared/data`` (5,006
faces, 240 identities): same identity cosine 0.556 ± 0.168 real, 0.558 ± 0.165 here;
different identities 0.091 ± 0.091 real, 0.092 ± 0.095 here; the mean embedding's
norm 0.305 real, 0.307 here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClusteredFaces:
    vectors: np.ndarray
    """``(n, dim)`` float32, unit length."""
    identities: np.ndarray
    """``(n,)`` int identity of each vector."""
    probes: np.ndarray
    """``(n_probes, dim)`` new faces of gallery identities."""
    probe_identities: np.ndarray


def clustered_faces(
    n: int,
    dim: int = 128,
    *,
    per_identity: float = 5.0,
    n_probes: int = 100,
    decay: float = 0.5,
    offset: float = 0.44,
    spread: float = 0.82,
    quality: float = 0.5,
    seed: int = 0,
) -> ClusteredFaces:
    """``n`` faces of about ``n / per_identity`` identities (at least one face each)."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, round(n / per_identity))
    variance = (np.arange(dim) + 1.0) ** -decay
    scale = np.sqrt(variance / variance.sum()).astype(np.float32)
    common = rng.standard_normal(dim).astype(np.float32)
    common *= np.float32(offset) / np.linalg.norm(common)
    centres = rng.standard_normal((n_ids, dim), dtype=np.float32) * scale + common
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    first = min(n, n_ids)
    identities = np.concatenate([np.arange(first), rng.integers(0, n_ids, n - first)])
    rng.shuffle(identities)

    def faces(ids: np.ndarray) -> np.ndarray:
        out = np.empty((len(ids), dim), dtype=np.float32)
        for start in range(0, len(ids), 65_536):  # bounded temporary memory at a million
            part = ids[start : start + 65_536]
            radius = spread * np.exp(quality * rng.standard_normal(len(part))) / np.sqrt(dim)
            noise = rng.standard_normal((len(part), dim), dtype=np.float32)
            v = centres[part] + noise * radius[:, None].astype(np.float32)
            out[start : start + len(part)] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out

    probe_ids = rng.choice(identities, size=n_probes)
    return ClusteredFaces(
        faces(identities), identities.astype(np.int64), faces(probe_ids), probe_ids
    )
