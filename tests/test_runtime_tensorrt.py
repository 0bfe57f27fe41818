"""The ``tensorrt`` backend: clear refusal without TensorRT, and the real thing with it.

Without TensorRT (or without a CUDA device) the backend must refuse with a
:class:`BackendUnavailableError` that names the fallback — never build or fake an
engine. Cache keys and optimization profiles are tested in
``test_runtime_cache.py``. The engine tests at the bottom run only where TensorRT
and a GPU are present (a GPU session runs them as they are).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from facefit.errors import BackendUnavailableError, InputError
from facefit_runtime.contract import contract_for
from facefit_runtime.models import TINY_NUM_TOKENS, tiny_unet
from facefit_runtime.tensorrt import TensorRTBackend, available, file_hash, import_tensorrt

HAS_TRT = any(importlib.util.find_spec(m) for m in ("tensorrt", "tensorrt_rtx"))
needs_trt_gpu = pytest.mark.skipif(
    not (HAS_TRT and torch.cuda.is_available()), reason="needs TensorRT and a CUDA GPU"
)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_missing_tensorrt_is_a_clear_error_naming_the_fallback():
    with pytest.raises(BackendUnavailableError) as info:
        TensorRTBackend(tiny_unet(), num_tokens=TINY_NUM_TOKENS)
    message = str(info.value)
    assert "TensorRT is not installed" in message
    assert "'onnxruntime'" in message and "'compiled'" in message
    assert "pip install tensorrt" in message


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_availability_says_why_not():
    ok, why = available()
    assert not ok and "TensorRT is not installed" in why
    with pytest.raises(BackendUnavailableError):
        import_tensorrt()


def test_refusal_is_a_plugin_error_the_cli_prints_without_a_traceback():
    from facefit.errors import PluginError

    assert issubclass(BackendUnavailableError, PluginError)


def test_registered_by_name_even_where_it_cannot_run(registry):
    assert "tensorrt" in registry.list_denoiser_backends()
    if not HAS_TRT:
        with pytest.raises(BackendUnavailableError, match="onnxruntime"):
            registry.create_denoiser_backend("tensorrt", model=tiny_unet(), num_tokens=8)


def test_unknown_precision_is_refused_before_anything_else():
    with pytest.raises(InputError, match="fp16, fp32"):
        TensorRTBackend(tiny_unet(), precision="int8")


def test_file_hash_covers_external_weights(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"graph")
    (tmp_path / "weights.bin").write_bytes(b"w1")
    first = file_hash(tmp_path / "model.onnx")
    (tmp_path / "weights.bin").write_bytes(b"w2")
    assert file_hash(tmp_path / "model.onnx") != first
    (tmp_path / "key.json").write_text("{}")  # cache bookkeeping does not count
    (tmp_path / "weights.bin").write_bytes(b"w1")
    assert file_hash(tmp_path / "model.onnx") == first


# -- with TensorRT and a GPU -----------------------------------------------------------------


@needs_trt_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_parity_cache_and_rebuild(tmp_path, precision):
    from facefit_runtime.parity import TOLERANCES, sampling_parity

    unet = tiny_unet().cuda()
    contract = contract_for(unet, num_tokens=TINY_NUM_TOKENS, batch=(1, 2, 4))
    backend = TensorRTBackend(unet, precision=precision, batch=(1, 2, 4), cache_dir=tmp_path)
    assert backend.build_seconds > 0
    report = sampling_parity(backend, unet, contract, steps=10, device="cuda")
    assert report.within(TOLERANCES[precision]), report.summary()
    for batch in (1, 4):  # other batch sizes in the profile, each with its own CUDA graph
        inputs = contract.sample_inputs(batch, device="cuda")
        with torch.no_grad():
            expected = unet(*inputs).sample
        assert float((backend(*inputs) - expected).abs().max()) <= TOLERANCES[precision].step
    backend.close()
    backend.close()
    again = TensorRTBackend(unet, precision=precision, batch=(1, 2, 4), cache_dir=tmp_path)
    assert again.build_seconds == 0, "the cached engine is loaded, not rebuilt"
    assert (tmp_path / "timing").is_dir()
    rebuilt = TensorRTBackend(unet, precision=precision, batch=(1, 2, 8), cache_dir=tmp_path)
    assert rebuilt.build_seconds > 0, "a new shape profile builds a new engine"
