"""Turning a device name from a user or a config into one torch can use here, and the
denoiser backend that ``auto`` means on that device."""

from __future__ import annotations

import importlib.util
from typing import Any

from facefit.errors import InputError

__all__ = ["AUTO_BACKEND", "auto_backend", "resolve_device"]

AUTO_BACKEND = "auto"
"""The denoiser backend name that :func:`auto_backend` resolves."""


def resolve_device(name: str, what: str = "device") -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` → a device torch can use here, or an error.

    ``auto`` picks the GPU when torch sees one. ``what`` names the setting in errors
    (``"train-matcher: device"``). Imports torch.
    """
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(
                f"{what} {name!r} requested but no CUDA GPU is usable here "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use cpu"
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise InputError(
                f"{what} {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return name
    raise InputError(f"unknown {what} {name!r}; use cpu, cuda, cuda:N or auto")


def auto_backend(name: str, registry: Any, device: str) -> str:
    """The denoiser backend plugin to create for ``name`` on ``device``: ``name`` itself,
    or for ``"auto"`` ``onnxruntime`` on the CPU where that plugin is registered and
    ONNX Runtime is installed, else ``eager``.

    The one rule behind ``auto`` for the pipeline
    (:func:`facefit.pipeline.components.backend_plugin`) and augmentation
    (:func:`facefit.augment.plan.resolve_backend`). On a GPU ``auto`` is ``eager``:
    ONNX Runtime's gain is measured on the CPU only
    (benchmarks/results/runtime_cpu.md); name ``onnxruntime``, ``compiled`` or
    ``tensorrt`` to use one on a GPU. ``device`` is a device name (``"auto"`` is resolved
    by :func:`resolve_device`); ``registry`` is anything with ``list(kind)``.
    """
    if name != AUTO_BACKEND:
        return name
    on_cpu = (resolve_device(device) if device == "auto" else device) == "cpu"
    if (
        on_cpu
        and "onnxruntime" in registry.list("denoiser_backend")
        and importlib.util.find_spec("onnxruntime") is not None
    ):
        return "onnxruntime"
    return "eager"
