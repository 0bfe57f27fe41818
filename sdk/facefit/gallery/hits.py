"""Search results: faces found, and identities ranked by fusing their faces.

An identity may have several faces in a gallery (mugshots from several arrests,
photos from several years). Identity search ranks identities by their best face
(max fusion): a probe that matches one photo well is a strong lead even if the
identity's other photos differ, and the ranking is exactly that of the face list
read top-down, first appearance per identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facefit.types import Match


@dataclass(frozen=True)
class FaceHit:
    """One gallery face returned by a search (rank 1 is the closest)."""

    label: int
    identity: str
    score: float
    """Cosine similarity to the query."""
    rank: int
    source: str | None = None
    sha256: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class IdentityHit:
    """One identity in a ranked list, with the faces of it that the search found."""

    identity: str
    score: float
    """The best score among its faces (max fusion)."""
    rank: int
    faces: tuple[FaceHit, ...]
    """Its faces found by the search, best first; ``faces[0]`` gave ``score``."""

    def to_match(self) -> Match:
        """As a :class:`facefit.types.Match` (``image_id``: the best face's source or label)."""
        best = self.faces[0]
        return Match(self.identity, self.score, self.rank, best.source or str(best.label))


def first_identities(identity_ids: np.ndarray, k: int) -> list[int]:
    """Positions in a best-first face list where each of the first ``k`` identities appears first."""
    _, first = np.unique(identity_ids, return_index=True)
    return sorted(first.tolist())[:k]
