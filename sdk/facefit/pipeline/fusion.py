"""Ranking identities within a round and across rounds.

**Within a round** an identity's score is its best cosine to any of the round's
candidates that the investigator did not reject (max fusion, as the gallery fuses
an identity's photos): one candidate that looks like the suspect is a lead.

**Across rounds** an identity's fused score is the *mean* of its round scores over
all rounds run so far. An identity outside a round's retrieved list (each
candidate retrieves the top ``k`` identities) gets that round's floor, the largest
``k``-th score among its candidates — no unlisted identity can score above it, so
the bound never ranks a missed identity below a listed one it might beat. With
``k`` the gallery's size (the evaluation harness does this) every score is exact.
The mean rewards identities that keep coming back as the generation is steered,
and does not let a single lucky round decide; rounds whose candidates were all
rejected are left out.

Ties break by identity name, so a ranking never depends on dictionary order.

These are the *generated* scores. The rankings a run reports fuse them with the
evidence matched directly (:mod:`facefit.pipeline.ranking`, :mod:`facefit.fusion`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from facefit.types import Match

__all__ = ["RoundScores", "fuse_rounds", "round_means", "round_scores", "top_identity_streak"]


@dataclass(frozen=True)
class RoundScores:
    """One round's identity scores: ``scores`` for listed identities, ``floor`` for the rest."""

    scores: dict[str, float]
    best_face: dict[str, str | None]
    floor: float

    def ranked(self, k: int) -> tuple[Match, ...]:
        order = sorted(self.scores, key=lambda i: (-self.scores[i], i))[:k]
        return tuple(
            Match(i, self.scores[i], rank, self.best_face.get(i))
            for rank, i in enumerate(order, start=1)
        )


def round_scores(hits_per_candidate: Sequence[Sequence[Match]]) -> RoundScores | None:
    """Max-fuse the candidates' identity lists; None when no candidate is left."""
    scores: dict[str, float] = {}
    best_face: dict[str, str | None] = {}
    floor = float("-inf")
    for hits in hits_per_candidate:
        if not hits:
            continue
        floor = max(floor, min(h.score for h in hits))
        for hit in hits:
            if hit.identity not in scores or hit.score > scores[hit.identity]:
                scores[hit.identity] = hit.score
                best_face[hit.identity] = hit.image_id
    if not scores:
        return None
    return RoundScores(scores, best_face, floor)


def fuse_rounds(rounds: Sequence[RoundScores | None], k: int) -> tuple[Match, ...]:
    """The top ``k`` identities by mean round score (see the module doc)."""
    used = [r for r in rounds if r is not None]
    if not used:
        return ()
    identities = sorted({i for r in used for i in r.scores})
    fused: dict[str, float] = {}
    face: dict[str, tuple[float, str | None]] = {}
    for identity in identities:
        values = [r.scores.get(identity, r.floor) for r in used]
        fused[identity] = round(sum(values) / len(values), 6)
        for r in used:
            if identity in r.scores and (
                identity not in face or r.scores[identity] > face[identity][0]
            ):
                face[identity] = (r.scores[identity], r.best_face.get(identity))
    order = sorted(identities, key=lambda i: (-fused[i], i))[:k]
    return tuple(Match(i, fused[i], rank, face[i][1]) for rank, i in enumerate(order, start=1))


def round_means(
    rounds: Sequence[RoundScores | None],
) -> tuple[dict[str, float], dict[str, str | None], float]:
    """Every listed identity's mean round score (as :func:`fuse_rounds`), its best gallery
    face, and the mean floor: the score of an identity no round listed (an upper bound)."""
    used = [r for r in rounds if r is not None]
    if not used:
        return {}, {}, float("-inf")
    means: dict[str, float] = {}
    face: dict[str, tuple[float, str | None]] = {}
    for identity in sorted({i for r in used for i in r.scores}):
        values = [r.scores.get(identity, r.floor) for r in used]
        means[identity] = round(sum(values) / len(values), 6)
        for r in used:
            if identity in r.scores and (
                identity not in face or r.scores[identity] > face[identity][0]
            ):
                face[identity] = (r.scores[identity], r.best_face.get(identity))
    floor = round(sum(r.floor for r in used) / len(used), 6)
    return means, {i: f[1] for i, f in face.items()}, floor


def top_identity_streak(tops: Sequence[str | None]) -> int:
    """How many of the last rounds in a row had the same top identity."""
    if not tops or tops[-1] is None:
        return 0
    streak = 1
    for previous in reversed(tops[:-1]):
        if previous != tops[-1]:
            break
        streak += 1
    return streak
