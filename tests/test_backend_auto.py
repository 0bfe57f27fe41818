"""The default denoiser backend, ``auto``: ONNX Runtime on the CPU where installed."""

from __future__ import annotations

import importlib.util

import pytest

from facefit.config import DEFAULT_COMPONENTS
from facefit.devices import resolve_device
from facefit.pipeline.components import backend_plugin


def test_default_backend_is_auto():
    assert DEFAULT_COMPONENTS["denoiser_backend"].plugin == "auto"


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime absent")
def test_auto_picks_onnxruntime_on_the_cpu(registry):
    assert backend_plugin("auto", registry, "cpu") == "onnxruntime"


def test_auto_picks_eager_on_cuda_and_without_onnxruntime(registry, monkeypatch):
    assert backend_plugin("auto", registry, "cuda") == "eager"
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a)
    )
    assert backend_plugin("auto", registry, "cpu") == "eager"


def test_a_named_backend_is_kept(registry):
    assert backend_plugin("eager", registry, "cpu") == "eager"
    assert backend_plugin("compiled", registry, "cuda") == "compiled"


def _both(registry, device):
    """What ``auto`` resolves to in the pipeline and in an augmentation job on ``device``."""
    from facefit.augment.plan import AugmentSettings, resolve_backend

    job = resolve_backend(AugmentSettings(backend="auto", device=device), registry)
    return backend_plugin("auto", registry, resolve_device(device)), job


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_pipeline_and_augment_agree_on_the_cpu(registry, monkeypatch, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    expected = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "eager"
    assert _both(registry, device) == (expected, expected)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a)
    )
    assert _both(registry, device) == ("eager", "eager")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "auto"])
def test_pipeline_and_augment_agree_on_a_gpu(registry, monkeypatch, device):
    """A GPU, and an ONNX Runtime whose CUDA provider works: ``auto`` is eager for both
    (augment used to pick onnxruntime here while the pipeline picked eager)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    try:
        from facefit_runtime import onnxruntime_backend
    except ImportError:
        pass
    else:
        monkeypatch.setattr(onnxruntime_backend, "cuda_available", lambda: (True, "patched"))
    assert resolve_device(device).startswith("cuda")
    assert _both(registry, device) == ("eager", "eager")
