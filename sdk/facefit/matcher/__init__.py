"""The sketch-to-mugshot matcher: SFace fine-tuned with AdaFace's adaptive margin.

    >>> from facefit.matcher import TrainSettings, train_matcher, load_matcher_torch
    >>> train_matcher("models/sketch-matcher", data_dir="../shared/data")
    >>> module = load_matcher_torch("models/sketch-matcher")   # (N,3,112,112) → (N,128)

Modules: :mod:`~facefit.matcher.data` (training pairs, aligned crops),
:mod:`~facefit.matcher.model` (SFace split into a frozen trunk and a trainable tail),
:mod:`~facefit.matcher.train` (the AdaFace fine-tuning), :mod:`~facefit.matcher.files`
(the saved directory: ONNX, safetensors, config, card). The face encoder is the
``sketch-matcher`` plugin (:mod:`facefit_plugins.face_encoders.matcher`); ``facefit train-matcher`` is
the command. See ``docs/matcher.md``.
"""

from __future__ import annotations

from facefit.lazy import lazy_exports

_EXPORTS = {
    "TrainSettings": "facefit.matcher.train",
    "fit": "facefit.matcher.train",
    "train_matcher": "facefit.matcher.train",
    "rank_metrics": "facefit.matcher.train",
    "load_matcher_onnx": "facefit.matcher.files",
    "load_matcher_torch": "facefit.matcher.files",
    "read_config": "facefit.matcher.files",
    "resolve_matcher_dir": "facefit.matcher.files",
    "save_matcher": "facefit.matcher.files",
    "GraphTail": "facefit.matcher.model",
    "load_base": "facefit.matcher.model",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
