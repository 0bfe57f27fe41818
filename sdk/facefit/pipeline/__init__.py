"""The IdentiFace loop as an API: :class:`Pipeline`, its settings, progress and cancellation.

    >>> from facefit.pipeline import CancelToken, Pipeline, PipelineConfig
    >>> config = PipelineConfig(rounds=2, candidates=2, steps=4)
    >>> pipeline = Pipeline.from_config(config, gallery="mugshots.gallery").warm_up()
    >>> token = CancelToken()
    >>> result = pipeline.run(evidence, progress=print, cancel=token)

See ``docs/pipeline.md``. :func:`evaluation_generator` is what the eval harness's
``one-shot`` and ``iterative`` modes call.
"""

from __future__ import annotations

from facefit.config import PipelineConfig, Settings
from facefit.pipeline.choice import Choice
from facefit.pipeline.evaluation import evaluation_generator
from facefit.pipeline.loop import Pipeline, round_seed
from facefit.pipeline.progress import STAGES, Cancelled, CancelToken, Progress

__all__ = [
    "STAGES",
    "CancelToken",
    "Cancelled",
    "Choice",
    "Pipeline",
    "PipelineConfig",
    "Progress",
    "Settings",
    "evaluation_generator",
    "round_seed",
]
