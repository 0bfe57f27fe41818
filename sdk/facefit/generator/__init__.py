"""facefit's conditional face generator: model, conditions, training data and training.

    >>> from facefit.generator import load_generator
    >>> model = load_generator("default")          # or a model directory
    >>> spatial, tokens = model.encode_conditions(model.conditions_to_tensors(conditions))

Torch and diffusers are imported when a name from this package is first used, so
``import facefit.generator`` stays light.
"""

from __future__ import annotations

from facefit.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
