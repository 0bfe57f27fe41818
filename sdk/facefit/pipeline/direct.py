"""The evidence matched directly against the gallery: one identity score per source.

Once per run, before anything is generated, every sketch and low-quality frame of
the evidence is embedded by the encoder that suits it and searched in the gallery
for every identity's score, and the text is scored by attribute agreement with
each identity's photos (see :mod:`facefit.fusion`):

- sketches: by the sketch matcher, through a gallery of the same mugshots enrolled
  with it (``Pipeline(sketch_gallery=…)``, ``facefit generate --sketch-gallery``);
  without one, by the gallery's own encoder, and the run's notes say so;
- low-quality frames: by the gallery's encoder (SFace);
- text: the attribute probes of the gallery's encoder, where a stated attribute has
  an accurate probe (:mod:`facefit.text_agreement`).

Several sketches (or frames) give the mean of their identity scores. Several
descriptions (witnesses) give the mean of the agreements of those that can be
scored; each description's own agreement is kept (:attr:`DirectScores.texts`) and
goes into the ranking's record (``result.json`` / ``provenance.json`` ``fusion.texts``),
so witnesses who contradict each other are seen, not averaged away unseen. The loop then
fuses these scores with the generated candidates' (:class:`facefit.fusion.FusionModel`),
so a ranking never leaves the evidence itself out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facefit.fusion.model import TEXT_SCORER, encoder_id, lq_id

__all__ = ["DirectScores", "direct_scores"]


@dataclass(frozen=True)
class DirectScores:
    """Per source, every gallery identity's score (identity → score), and how it was made."""

    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    encoders: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    faces: dict[str, str | None] = field(default_factory=dict)
    """Each identity's gallery face that matched the first image best (its source)."""
    texts: tuple[dict[str, Any], ...] = ()
    """Per description, in order: ``description`` (its number from 1), ``scored`` (whether
    it entered the ``"text"`` mean), ``why`` (if not) and ``scores`` (identity → its agreement)."""


def _all_identity_scores(
    gallery: Any, vectors: np.ndarray, faces: dict[str, str | None]
) -> dict[str, float]:
    """Mean over the query vectors of each identity's best cosine (every identity); the
    best face of each identity for the first query goes into ``faces`` where unset."""
    k = gallery.num_identities
    totals: dict[str, float] = {}
    for hits in gallery.search_many(np.asarray(vectors, np.float32), k):
        for hit in hits:
            totals[hit.identity] = totals.get(hit.identity, 0.0) + float(hit.score)
            faces.setdefault(hit.identity, hit.faces[0].source if hit.faces else None)
    return {i: round(s / len(vectors), 6) for i, s in totals.items()}


def _crop(embedder: Any, image: np.ndarray, check: Any, modality: str) -> np.ndarray:
    """The image aligned at the encoder's size, as the evidence check decided to use it."""
    from facefit.imaging.degrade import normalize_lq

    size = embedder.encoder.input_size
    if modality == "lq" and check is not None and check.use in ("aligned", "as given"):
        return normalize_lq(image, size)  # an aligned small crop: upsampled, not detected
    face = embedder.locate(image, source=getattr(check, "source", modality), sketch_fallback=True)
    return face.crop


def _text_scores(gallery: Any, text: str) -> tuple[dict[str, float] | None, str]:
    from facefit.text_agreement import AttributeProbes, parse_description

    probes = AttributeProbes.for_encoder(gallery.encoder.name)
    if probes is None or int(probes.dim) != int(gallery.dim):
        return None, f"no attribute probes for {gallery.encoder.name}"
    attributes = parse_description(text)
    if not probes.scorable(attributes):
        return None, "it states no attribute facefit can check reliably"
    records = gallery.find()
    vectors = gallery.retriever.get_vectors(np.array([r.label for r in records]))
    agreement = probes.agreement(vectors, attributes)
    out: dict[str, float] = {}
    for record, value in zip(records, agreement, strict=True):
        out[record.identity] = max(out.get(record.identity, 0.0), round(float(value), 6))
    return out, ""


def direct_scores(
    images: dict[str, list[tuple[np.ndarray, Any]]],
    text: str | list[str] | tuple[str, ...] | None,
    *,
    detector: Any,
    gallery: Any,
    encoder: Any,
    sketch_gallery: Any = None,
    sketch_encoder: Any = None,
) -> DirectScores:
    """Score every source of the evidence against ``gallery`` (see the module doc).

    ``images`` maps ``"sketch"`` / ``"lq"`` to ``(image, evidence check)`` pairs;
    ``encoder`` made ``gallery``; ``sketch_encoder`` made ``sketch_gallery``; ``text``
    is one description or several (other witnesses').
    """
    from facefit.imaging.faces import FaceEmbedder

    scores: dict[str, dict[str, float]] = {}
    encoders: dict[str, str] = {}
    notes: list[str] = []
    faces: dict[str, str | None] = {}
    for modality, items in images.items():
        if not items:
            continue
        target, enc = gallery, encoder
        if modality == "sketch" and sketch_gallery is not None:
            target, enc = sketch_gallery, sketch_encoder
        elif modality == "sketch":
            notes.append(
                f"direct: sketches matched with {encoder.name} (no sketch-matcher gallery given: "
                "build one with `facefit gallery build --encoder sketch-matcher` and pass "
                "--sketch-gallery)"
            )
        embedder = FaceEmbedder(detector, enc)
        crops = np.stack([_crop(embedder, image, check, modality) for image, check in items])
        vectors = embedder.embed_aligned(crops)
        scores[modality] = _all_identity_scores(target, vectors, faces)
        encoders[modality] = encoder_id(enc)
        if modality == "lq":
            image, check = items[0]
            aligned = check is not None and check.use in ("aligned", "as given")
            encoders[modality] = lq_id(enc, image.shape[0] if aligned else None)
    texts = [text] if isinstance(text, str) else list(text or ())
    parts: list[dict[str, Any]] = []
    for n, description in enumerate(texts, start=1):
        found, why = _text_scores(gallery, description)
        which = "text" if len(texts) == 1 else f"text {n}"
        if found is None:
            notes.append(f"direct: {which} not scored ({why})")
        parts.append({"description": n, "scored": found is not None, "why": why, "scores": found})
    scored = [p["scores"] for p in parts if p["scores"] is not None]
    if scored:
        names = set().union(*scored)
        scores["text"] = {
            i: round(sum(s.get(i, 0.0) for s in scored) / len(scored), 6) for i in names
        }
        encoders["text"] = TEXT_SCORER.format(encoder=encoder_id(encoder))
        if len(texts) > 1:
            notes.append(
                f"direct: text is the mean agreement of {len(scored)} of {len(texts)} "
                "descriptions (each one's is in fusion.texts)"
            )
    return DirectScores(scores, encoders, tuple(notes), faces, tuple(parts))
