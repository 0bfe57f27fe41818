"""The default denoiser backend, ``auto``: ONNX Runtime on the CPU where installed."""

from __future__ import annotations

import importlib.util

import pytest

from facefit.config import DEFAULT_COMPONENTS
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
