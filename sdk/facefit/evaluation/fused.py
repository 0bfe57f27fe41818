"""Direct evidence scores per source, and the ``fused`` evaluation mode.

:func:`direct_source_scores` gives, for one probe, every gallery identity's score
from each source of evidence (see :mod:`facefit.fusion`), each image embedded by the
encoder that suits it: sketches by the sketch matcher (:func:`sketch_encoder`),
low-quality frames by SFace, text by attribute agreement where a probe is
accurate enough. A probe with several sketches or frames (other witnesses, other
cameras) scores each source by the mean of its images' identity scores, and several
descriptions by the mean agreement of those that can be scored, as the pipeline does
(:mod:`facefit.pipeline.direct`). ``facefit fusion fit`` fits profiles on these scores on the
calibration slice; the ``fused`` mode ranks the development split with them and
reports calibrated probabilities.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.errors import FacefitError, InputError
from facefit.evaluation.modes import (
    DirectMode,
    EvalContext,
    ProbeOutcome,
    lq_crops,
    sketch_crops,
)
from facefit.fusion.model import TEXT_SCORER, encoder_id, lq_id

if TYPE_CHECKING:
    from facefit.evaluation.evidence import LoadedProbe

__all__ = ["FusedMode", "direct_source_scores", "sketch_encoder"]

log = logging.getLogger(__name__)

MATCHER = "sketch-matcher"


def sketch_encoder(context: EvalContext) -> tuple[str, str | None]:
    """The encoder for sketches, and a note when it is not the sketch matcher.

    ``--matcher NAME`` when given; else the registry's ``sketch-matcher`` with its
    default weights (``$FACEFIT_SKETCH_MATCHER_PATH`` or the model cache); else the
    identity encoder, with a note saying so.
    """
    if context.matcher:
        return context.matcher, None
    fallback = getattr(context, "_no_default_matcher", None)
    if fallback is None:
        try:
            context.embedder(MATCHER)
        except FacefitError as exc:
            fallback = f"sketches embedded by {context.encoder}: no default sketch matcher ({exc})"
            context._no_default_matcher = fallback  # decided once per benchmark
            log.warning("%s", fallback)
        else:
            context.matcher = MATCHER
            return MATCHER, None
    return context.encoder, fallback


def _text_scores(context: EvalContext, text: str) -> np.ndarray | None:
    """Per identity, the best attribute agreement of its photos with ``text`` (or None)."""
    from facefit.text_agreement import AttributeProbes, parse_description

    probes = AttributeProbes.for_encoder(context.encoder)
    if probes is None:
        return None
    gallery = context.gallery(context.encoder)
    agreement = probes.agreement(gallery.vectors, parse_description(text))
    if agreement is None:
        return None
    out = np.full(len(gallery.identities), -np.inf)
    for j in range(len(gallery.identities)):
        start, stop = gallery.bounds[j], gallery.bounds[j + 1]
        if stop > start:
            out[j] = float(np.max(agreement[start:stop]))
    return out


def _mean_scores(context: EvalContext, encoder: str, crops: list[np.ndarray]) -> np.ndarray:
    """Mean over the images of each identity's best cosine (the ``direct`` mode's rule)."""
    vectors = context.embedder(encoder).embed_aligned(np.stack(crops))
    scores, _ = context.gallery(encoder).scores(vectors)
    return scores.mean(axis=0)


def direct_source_scores(
    context: EvalContext, loaded: LoadedProbe
) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """Per source present: identity scores (gallery column order), the encoder, and notes."""
    evidence = loaded.evidence
    scores: dict[str, np.ndarray] = {}
    encoders: dict[str, str] = {}
    notes: list[str] = []
    if evidence.sketch is not None:
        name, note = sketch_encoder(context)
        if note:
            notes.append(note)
        embedder = context.embedder(name)
        scores["sketch"] = _mean_scores(context, name, sketch_crops(embedder, evidence, notes))
        encoders["sketch"] = encoder_id(embedder.encoder)
    if evidence.lq is not None:
        embedder = context.embedder(context.encoder)
        size = embedder.encoder.input_size
        crops = lq_crops(embedder, evidence, loaded.lq_aligned, size)
        scores["lq"] = _mean_scores(context, context.encoder, crops)
        side = evidence.lq.shape[0] if loaded.lq_aligned else None
        encoders["lq"] = lq_id(embedder.encoder, side)
    if evidence.text is not None:
        texts = evidence.texts
        found = [_text_scores(context, text) for text in texts]
        scored = [t for t in found if t is not None]
        if not scored:
            what = "text" if len(texts) == 1 else f"text ({len(texts)} descriptions)"
            notes.append(f"{what}: not scored (no attribute it states can be checked reliably)")
        else:
            identity = encoder_id(context.embedder(context.encoder).encoder)
            # several descriptions: the mean of those that can be scored (as the pipeline)
            scores["text"] = np.mean(scored, axis=0) if len(scored) > 1 else scored[0]
            encoders["text"] = TEXT_SCORER.format(encoder=identity)
            if len(texts) > 1:
                notes.append(
                    f"text: the mean agreement of {len(scored)} of {len(texts)} descriptions"
                )
    if evidence.reference is not None:
        notes.append("reference: not a source of the fused mode (it is a gallery face)")
    if not scores:
        raise InputError(f"probe {loaded.probe.id!r}: no evidence the fused mode can score")
    return scores, encoders, notes


class FusedMode(DirectMode):
    """Every source of evidence matched directly, fused and calibrated (no generation)."""

    name = "fused"
    summary = (
        "the evidence itself, each image by the encoder that suits it (sketch matcher, "
        "SFace) and the text by attribute agreement, fused with the fitted weights"
    )

    def ignored(self, probe: Any) -> tuple[str, ...]:
        return ("reference",) if probe.reference is not None else ()

    def unsupported(self, probe: Any) -> str | None:
        return None

    def prepare(self, context: EvalContext) -> Any:
        sketch_encoder(context)
        if context.matcher:
            context.gallery(context.matcher)
        return context.gallery(context.encoder)

    def run_probe(self, context: EvalContext, loaded: LoadedProbe) -> ProbeOutcome:
        scores, encoders, notes = direct_source_scores(context, loaded)
        fused = context.fusion().fuse(scores, encoders, prior=1.0)
        return ProbeOutcome(
            loaded.probe,
            fused.raw,
            notes=tuple(notes) + fused.notes,
            probabilities=fused.probability,
        )
