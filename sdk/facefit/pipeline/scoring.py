"""How well a candidate face agrees with the evidence itself (never with the truth).

Each present modality that can be checked honestly gets a score:

=============  ===================================================================
``sketch``     :func:`facefit.imaging.sketch.sketch_similarity` of the candidate's simple
               sketch (drawn by the pipeline's sketch extractor) and the aligned
               input drawing, in [-1, 1]
``lq``         :func:`facefit.imaging.degrade.lq_similarity` of the candidate reduced to the
               low-quality image's size and that image, in [0, 1]
``reference``  cosine of the candidate's and the reference face's identity
               embeddings (the generator's identity encoder), in [-1, 1]
``text``       mean probability, from attribute probes on the candidate's identity
               embedding, that it shows the attributes the text states (gender,
               baldness, hair colour: :mod:`facefit.text_agreement`), in [0, 1]
=============  ===================================================================

Text is scored only for what can be checked honestly: attributes the text states
in words :func:`~facefit.text_agreement.parse_description` knows, with a probe
for the identity encoder that was accurate on held-out faces. When nothing in the
text can be checked, the round's trace says why and the text is not scored
(it still conditions the generator).

Several descriptions (witnesses) are each scored so, and a candidate's ``text``
score is the mean over the descriptions that can be checked (:class:`MeanTextScorer`);
each description's verdict is in the trace's notes.

A candidate's evidence consistency is the mean of its scores
(:attr:`facefit.types.Candidate.consistency`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facefit.pipeline.evidence import PreparedEvidence

__all__ = [
    "TEXT_UNSCORED",
    "MeanTextScorer",
    "TextScorer",
    "evidence_scores",
    "text_scorer",
    "texts_scorer",
]

TEXT_UNSCORED = "text: not scored ({why}; the text still conditions the generator)"


class TextScorer:
    """Scores identity embeddings against the attributes a description states."""

    def __init__(self, probes: Any, attributes: dict[str, Any]) -> None:
        self.probes = probes
        self.attributes = attributes
        self.checked = sorted(probes.scorable(attributes))

    def __call__(self, identity_vectors: np.ndarray) -> np.ndarray:
        return self.probes.agreement(identity_vectors, self.attributes)

    @property
    def note(self) -> str:
        return f"text: scored on {', '.join(self.checked)} (attribute probes on the identity embedding)"


def text_scorer(text: str, encoder: Any) -> tuple[TextScorer | None, str]:
    """A scorer for ``text`` with ``encoder``'s embeddings, or None; and a note for the trace."""
    from facefit.text_agreement import AttributeProbes, parse_description

    name = encoder.name
    probes = AttributeProbes.for_encoder(name)
    if probes is None or int(probes.dim) != int(encoder.dim):
        return None, TEXT_UNSCORED.format(why=f"no attribute probes for encoder {name!r}")
    attributes = parse_description(text)
    scorer = TextScorer(probes, attributes)
    if not scorer.checked:
        return None, TEXT_UNSCORED.format(
            why="it states no attribute facefit can check (gender, baldness, hair colour)"
        )
    return scorer, scorer.note


class MeanTextScorer:
    """The mean agreement of several descriptions' scorers (other witnesses')."""

    def __init__(self, scorers: list[TextScorer]) -> None:
        self.scorers = scorers

    def __call__(self, identity_vectors: np.ndarray) -> np.ndarray:
        return np.mean([s(identity_vectors) for s in self.scorers], axis=0)


def texts_scorer(texts: list[str] | tuple[str, ...], encoder: Any) -> tuple[Any, list[str]]:
    """A scorer for one or several descriptions (the mean of those that can be scored),
    or None; and a note per description for the trace."""
    if len(texts) == 1:
        scorer, note = text_scorer(texts[0], encoder)
        return scorer, [note]
    scorers, notes = [], []
    for n, text in enumerate(texts, start=1):
        scorer, note = text_scorer(text, encoder)
        notes.append(note.replace("text:", f"text {n}:", 1))
        if scorer is not None:
            scorers.append(scorer)
    if not scorers:
        return None, notes
    notes.append(f"text: the mean agreement of {len(scorers)} of {len(texts)} descriptions")
    return (scorers[0] if len(scorers) == 1 else MeanTextScorer(scorers)), notes


def evidence_scores(
    candidates: np.ndarray,
    prepared: PreparedEvidence,
    *,
    sketch_extractor: Any,
    reference_vector: np.ndarray | None = None,
    identity_vectors: np.ndarray | None = None,
    text: TextScorer | MeanTextScorer | None = None,
) -> list[dict[str, float]]:
    """Per candidate ``(N, S, S, 3)``, its agreement with each checkable modality."""
    from facefit.imaging.degrade import lq_similarity
    from facefit.imaging.sketch import sketch_similarity

    text_scores = None
    if text is not None and identity_vectors is not None:
        text_scores = text(identity_vectors)
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
        if text_scores is not None:
            scores["text"] = round(float(text_scores[i]), 6)
        out.append(scores)
    return out
