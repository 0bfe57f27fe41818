"""How well a candidate face agrees with the evidence itself (never with the truth).

Each present modality that can be checked honestly gets a score:

=============  ===================================================================
``sketch``     :func:`facefit.sketch.sketch_similarity` of the candidate's simple
               sketch (drawn by the pipeline's sketch extractor) and the aligned
               input drawing, in [-1, 1]
``lq``         :func:`facefit.degrade.lq_similarity` of the candidate reduced to the
               low-quality image's size and that image, in [0, 1]
``reference``  cosine of the candidate's and the reference face's identity
               embeddings (the generator's identity encoder), in [-1, 1]
=============  ===================================================================

Text is not scored: judging whether a face fits "a young woman with long black
hair" needs an image–text model (CLIP), and no such weights are available to
facefit; a word-matching guess would look like a measurement and is not one. The
round's trace says so (:data:`TEXT_UNSCORED`).

A candidate's evidence consistency is the mean of its scores
(:attr:`facefit.types.Candidate.consistency`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facefit.pipeline.evidence import PreparedEvidence

__all__ = ["TEXT_UNSCORED", "evidence_scores"]

TEXT_UNSCORED = (
    "text: not scored (no image-text model is available to judge attributes honestly; "
    "the text still conditions the generator)"
)


def evidence_scores(
    candidates: np.ndarray,
    prepared: PreparedEvidence,
    *,
    sketch_extractor: Any,
    reference_vector: np.ndarray | None = None,
    identity_vectors: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Per candidate ``(N, S, S, 3)``, its agreement with each checkable modality."""
    from facefit.degrade import lq_similarity
    from facefit.sketch import sketch_similarity

    out: list[dict[str, float]] = []
    for i, face in enumerate(candidates):
        scores: dict[str, float] = {}
        if prepared.sketch is not None:
            drawing = sketch_extractor.extract(face)
            size = prepared.sketch.shape[0]
            scores["sketch"] = round(sketch_similarity(drawing, prepared.sketch, size=size), 6)
        if prepared.lq is not None:
            scores["lq"] = round(lq_similarity(face, prepared.lq), 6)
        if reference_vector is not None and identity_vectors is not None:
            scores["reference"] = round(float(identity_vectors[i] @ reference_vector), 6)
        out.append(scores)
    return out
