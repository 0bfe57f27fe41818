"""The eval harness's hook into the loop: ``evaluation_generator(context)``.

The harness (:mod:`facefit.evaluation.modes`) calls it once per benchmark; the
returned ``generate(evidence, rounds) → Result`` runs the loop on one probe against
the benchmark's gallery (:meth:`EvalContext.gallery_index`), never seeing the
ground truth. Every gallery identity is retrieved by each candidate, so the fused
scores the harness ranks are exact (see :mod:`facefit.pipeline.fusion`).

Evidence is judged as in any run (:mod:`facefit.pipeline.evidence`), with
:data:`EVAL_ALLOW_NO_FACE` allowed: the benchmark protocol's low-quality probes are
aligned crops of 8×8 or 16×16 pixels, which no detector checks reliably, and the
``direct`` mode aligns sketches with the framed-drawing fallback too. Each such use
is flagged in the probe's result notes.

Rankings fuse the evidence matched directly with the candidates
(:mod:`facefit.pipeline.ranking`): sketches in the benchmark's gallery enrolled with
the sketch matcher (:func:`facefit.evaluation.fused.sketch_encoder`), with the
context's fusion weights and a match prior of 1.
"""

from __future__ import annotations

from typing import Any

from facefit.config import PipelineConfig
from facefit.types import Evidence, Result

__all__ = ["EVAL_ALLOW_NO_FACE", "evaluation_generator"]

EVAL_ALLOW_NO_FACE = ("sketch", "lq")
"""Evidence a benchmark may use without a verified face (see the module doc)."""


def evaluation_generator(context: Any) -> Any:
    """``generate(evidence, rounds) → Result`` for the harness's generating modes."""
    from facefit.pipeline.loop import Pipeline

    config = context.config or PipelineConfig()
    if config.components["face_encoder"].plugin != context.encoder:
        from dataclasses import replace

        from facefit.config import ComponentSpec

        components = {**config.components, "face_encoder": ComponentSpec(context.encoder)}
        config = replace(config, components=components)
    from facefit.evaluation.fused import sketch_encoder

    gallery = context.gallery_index(context.encoder)
    # every benchmark probe's person is enrolled: the match prior is 1 (see facefit.fusion)
    config = config.replace_settings(top_k=max(1, gallery.num_identities), match_prior=1.0)
    sketches = None
    if hasattr(context, "embedder"):  # a harness context (a bare one has no matcher)
        matcher, _ = sketch_encoder(context)
        if matcher != context.encoder:
            sketches = (context.gallery_index(matcher), context.embedder(matcher).encoder)
    pipeline = Pipeline(
        config,
        registry=context.registry,
        gallery=gallery,
        sketch_gallery=sketches,
        fusion=context.fusion() if hasattr(context, "fusion") else None,
    )

    def generate(evidence: Evidence, rounds: int) -> Result:
        from dataclasses import replace

        allowed = tuple(dict.fromkeys((*evidence.allow_no_face, *EVAL_ALLOW_NO_FACE)))
        return pipeline.run(replace(evidence, allow_no_face=allowed), rounds=rounds)

    return generate
