"""The IdentiFace loop as an API: :class:`Pipeline`, :class:`Choice`, batch runs.

    >>> from facefit.pipeline import Pipeline, Choice
    >>> pipeline = Pipeline.from_config("pipeline.toml", gallery="mugshots.gallery")
    >>> result = pipeline.run(evidence, on_round=lambda trace: Choice(pick=2))

See ``docs/pipeline.md``. :func:`evaluation_generator` is what the eval harness's
``one-shot`` and ``iterative`` modes call.
"""

from __future__ import annotations

from facefit.pipeline.choice import Choice
from facefit.pipeline.evaluation import evaluation_generator
from facefit.pipeline.loop import Pipeline, round_seed

__all__ = ["Choice", "Pipeline", "evaluation_generator", "round_seed"]
