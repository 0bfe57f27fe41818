"""facefit's conditional face generator: model, conditions, training data and training.

    >>> from facefit.generator import load_generator
    >>> model = load_generator("default")          # or a model directory
    >>> spatial, tokens = model.encode_conditions(model.conditions_to_tensors(conditions))

Torch and diffusers are imported when a name from this package is first used, so
``import facefit.generator`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FaceGenerator": "facefit.generator.model",
    "Denoiser": "facefit.generator.model",
    "ConditionTensors": "facefit.generator.conditions",
    "DOMAINS": "facefit.generator.conditions",
    "domain_condition": "facefit.generator.conditions",
    "load_generator": "facefit.generator.loading",
    "DEFAULT_MODEL_DIR": "facefit.generator.loading",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'facefit.generator' has no attribute {name!r}")
