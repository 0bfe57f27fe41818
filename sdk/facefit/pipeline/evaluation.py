"""The eval harness's hook into the loop: ``evaluation_generator(context)``.

The harness (:mod:`facefit.evaluation.modes`) calls it once per benchmark; the
returned ``generate(evidence, rounds) → Result`` runs the loop on one probe against
the benchmark's gallery (:meth:`EvalContext.gallery_index`), never seeing the
ground truth. Every gallery identity is retrieved by each candidate, so the fused
scores the harness ranks are exact (see :mod:`facefit.pipeline.fusion`).
"""

from __future__ import annotations

from typing import Any

from facefit.config import PipelineConfig
from facefit.types import Evidence, Result

__all__ = ["evaluation_generator"]


def evaluation_generator(context: Any) -> Any:
    """``generate(evidence, rounds) → Result`` for the harness's generating modes."""
    from facefit.pipeline.loop import Pipeline

    config = context.config or PipelineConfig()
    if config.components["face_encoder"].plugin != context.encoder:
        from dataclasses import replace

        from facefit.config import ComponentSpec

        components = {**config.components, "face_encoder": ComponentSpec(context.encoder)}
        config = replace(config, components=components)
    gallery = context.gallery_index(context.encoder)
    config = config.replace_settings(top_k=max(1, gallery.num_identities))
    pipeline = Pipeline(config, registry=context.registry, gallery=gallery)

    def generate(evidence: Evidence, rounds: int) -> Result:
        return pipeline.run(evidence, rounds=rounds)

    return generate
