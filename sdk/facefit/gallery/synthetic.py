"""Synthetic galleries: embeddings clustered like identities, for tests and benchmarks.

Real face embeddings come in tight groups (one per person: several photos) spread
over the sphere, more along some directions than others. :func:`clustered_faces`
draws identity centres from a Gaussian whose variance falls off as
``(i + 1) ** -decay`` along the axes, then each face as its centre plus isotropic
noise of norm ``spread``, normalised; ``probes`` are fresh faces of gallery
identities (a new photo of someone enrolled). The defaults are fitted to SFace on
CelebA (see ``benchmarks/results/gallery.md``): a face agrees with its identity's
other faces at cosine ≈ 0.6 and with other identities at ≈ 0 ± 0.1.
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
    spread: float = 0.82,
    seed: int = 0,
) -> ClusteredFaces:
    """``n`` faces of about ``n / per_identity`` identities (at least one face each)."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, round(n / per_identity))
    scale = ((np.arange(dim) + 1.0) ** (-decay / 2)).astype(np.float32)
    centres = rng.standard_normal((n_ids, dim), dtype=np.float32) * scale
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    identities = np.concatenate(
        [np.arange(min(n, n_ids)), rng.integers(0, n_ids, n - min(n, n_ids))]
    )
    rng.shuffle(identities)

    def faces(ids: np.ndarray) -> np.ndarray:
        out = np.empty((len(ids), dim), dtype=np.float32)
        for start in range(0, len(ids), 65_536):  # bounded temporary memory at a million
            part = ids[start : start + 65_536]
            noise = rng.standard_normal((len(part), dim), dtype=np.float32)
            v = centres[part] + noise * np.float32(spread / np.sqrt(dim))
            out[start : start + len(part)] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out

    probe_ids = rng.choice(identities, size=n_probes)
    return ClusteredFaces(
        faces(identities), identities.astype(np.int64), faces(probe_ids), probe_ids
    )
