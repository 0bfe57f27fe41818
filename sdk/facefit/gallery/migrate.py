"""Copying a gallery between a directory and a database (``facefit gallery migrate``).

:func:`copy_faces` adds every face of one gallery to another — vector, identity,
source, image sha256 and metadata — in label order; :func:`check_copy` then compares
the two: face and identity counts, the records and vectors of a sample of faces, and
searches with those faces as queries (each must find its own identity first in both,
and the top identities must agree). Labels are renumbered densely (a source with
removed faces has gaps) and each face's enrolment time becomes the copy's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from facefit.gallery.index import GalleryIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyCheck:
    """What :func:`check_copy` compared, and what did not match."""

    faces: tuple[int, int]
    identities: tuple[int, int]
    sampled: int
    own_identity_first: float
    """Share of sampled faces whose own identity ranks first in the copy (as in the source)."""
    top_identity_overlap: float
    """Mean share of the source's top-k identities also in the copy's top-k."""
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


def copy_faces(
    source: GalleryIndex, target: GalleryIndex, *, chunk: int = 10_000, progress: bool = False
) -> np.ndarray:
    """Add every face of ``source`` to ``target``; return ``(n, 2)`` source → target labels."""
    records = source.find()
    pairs = np.empty((len(records), 2), dtype=np.int64)
    bar = tqdm(total=len(records), desc="copy faces", unit="face", disable=not progress)
    with bar:
        for start in range(0, len(records), chunk):
            part = records[start : start + chunk]
            labels = np.array([r.label for r in part], dtype=np.int64)
            added = target.add(
                source.retriever.get_vectors(labels),
                [r.identity for r in part],
                sources=[r.source for r in part],
                sha256s=[r.sha256 for r in part],
                metadata=[r.metadata for r in part],
            )
            pairs[start : start + len(part)] = np.stack([labels, added], axis=1)
            bar.update(len(part))
    return pairs


def check_copy(
    source: GalleryIndex,
    target: GalleryIndex,
    pairs: np.ndarray,
    *,
    sample: int = 100,
    k: int = 10,
    min_overlap: float = 0.9,
    seed: int = 0,
) -> CopyCheck:
    """Compare ``target`` with the ``source`` it was copied from (see the module doc)."""
    problems = []
    faces, identities = (len(source), len(target)), (source.num_identities, target.num_identities)
    if faces[0] != faces[1] or identities[0] != identities[1]:
        problems.append(
            f"the copy holds {faces[1]} faces of {identities[1]} identities, "
            f"the source {faces[0]} of {identities[0]}"
        )
    if len(pairs) != faces[0]:
        problems.append(f"{len(pairs)} faces were copied of {faces[0]}")
    rng = np.random.default_rng(seed)
    chosen = pairs[rng.choice(len(pairs), size=min(sample, len(pairs)), replace=False)]
    if not len(chosen):
        return CopyCheck(faces, identities, 0, 1.0, 1.0, tuple(problems))
    problems += _compare_records(source, target, chosen)
    queries = source.retriever.get_vectors(chosen[:, 0])
    copied = target.retriever.get_vectors(chosen[:, 1])
    drift = float(np.abs(_unit(queries) - _unit(copied)).max())
    if drift > 1e-5:
        problems.append(f"stored vectors differ by up to {drift:.2g}")
    k = min(k, identities[0], target.num_identities)
    before, after = source.search_many(queries, k), target.search_many(queries, k)
    wanted = source.records(chosen[:, 0].tolist())
    own = [a[0].identity == wanted[int(s)].identity for a, s in zip(after, chosen[:, 0])]
    own_before = [b[0].identity == wanted[int(s)].identity for b, s in zip(before, chosen[:, 0])]
    overlap = [
        len({h.identity for h in a} & {h.identity for h in b}) / k for a, b in zip(after, before)
    ]
    if sum(own) < sum(own_before):
        problems.append(
            f"{sum(own_before) - sum(own)} sampled faces no longer find their own identity first"
        )
    if np.mean(overlap) < min_overlap:
        problems.append(
            f"the top-{k} identities agree on {np.mean(overlap):.3f} of the sample, "
            f"below {min_overlap}"
        )
    return CopyCheck(
        faces,
        identities,
        len(chosen),
        float(np.mean(own)),
        float(np.mean(overlap)),
        tuple(problems),
    )


def _compare_records(source: GalleryIndex, target: GalleryIndex, pairs: np.ndarray) -> list[str]:
    before = source.records(pairs[:, 0].tolist())
    after = target.records(pairs[:, 1].tolist())
    wrong = []
    for old, new in pairs.tolist():
        a, b = before[old], after.get(new)
        if b is None or (a.identity, a.source, a.sha256, a.metadata) != (
            b.identity,
            b.source,
            b.sha256,
            b.metadata,
        ):
            wrong.append(old)
    if wrong:
        return [f"{len(wrong)} sampled faces lost their identity or provenance (e.g. {wrong[0]})"]
    return []


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)
