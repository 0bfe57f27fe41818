"""The ``compiled`` backend: torch.compile parity and its fallback to eager (CPU).

Inductor compiles C++ kernels for the CPU, which takes minutes on CI's two cores,
so the conformance checks run dynamo's graph capture with the ``aot_eager``
backend (the same traced graph, executed without code generation). The full
Inductor parity run is opt-in: ``FACEFIT_TEST_INDUCTOR=1``.
"""

from __future__ import annotations

import logging
import os

import pytest
import torch

from facefit.errors import BackendUnavailableError, InputError
from facefit.testing import DenoiserBackendTests
from facefit_runtime.compiled import CPU_MODE, CompiledBackend, available
from facefit_runtime.contract import contract_for
from facefit_runtime.models import TINY_NUM_TOKENS, tiny_unet
from facefit_runtime.parity import TOLERANCES, sampling_parity


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


@pytest.fixture(scope="module")
def contract(unet):
    return contract_for(unet, num_tokens=TINY_NUM_TOKENS)


class TestCompiledBackend(DenoiserBackendTests):
    plugin_name = "compiled"
    atol = TOLERANCES["fp32"].step

    @pytest.fixture(autouse=True)
    def _setup(self, unet, contract):
        self._unet, self._contract = unet, contract

    def make(self):
        return CompiledBackend(self._unet, backend="aot_eager", strict=True)

    def reference(self):
        return self._unet

    def inputs(self):
        return self._contract.sample_inputs(2)


def test_cpu_default_mode_and_no_cuda_graphs(unet):
    backend = CompiledBackend(unet, backend="aot_eager")
    assert backend.mode == CPU_MODE and not backend.cuda_graphs


def test_without_a_cpp_compiler_it_falls_back_to_eager_and_says_why(
    unet, contract, monkeypatch, caplog
):
    from torch._inductor import config

    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(config.cpp, "cxx", (None, "no-such-compiler"))
    ok, why = available("cpu")
    assert not ok and "C++ compiler" in why
    with caplog.at_level(logging.WARNING, logger="facefit_runtime.compiled"):
        backend = CompiledBackend(unet)
    assert not backend.is_compiled and "C++ compiler" in backend.fallback_reason
    assert "running the model eagerly" in caplog.text
    inputs = contract.sample_inputs(1)
    with torch.no_grad():
        expected = unet(*inputs).sample
    assert torch.equal(backend(*inputs), expected)
    with pytest.raises(BackendUnavailableError, match=r"C\+\+ compiler.*'eager' or 'onnxruntime'"):
        CompiledBackend(unet, strict=True)


class _GraphBreak(torch.nn.Module):
    """A denoiser dynamo cannot capture as one graph."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, sample, timestep, encoder_hidden_states):
        torch._dynamo.graph_break()
        return sample * self.scale + encoder_hidden_states.mean()


def test_a_compile_failure_falls_back_to_eager_on_the_first_call(caplog):
    model = _GraphBreak()
    backend = CompiledBackend(model, backend="eager", fullgraph=True)
    sample, tokens = torch.ones(2, 3, 4, 4), torch.ones(2, 5, 6)
    with caplog.at_level(logging.WARNING, logger="facefit_runtime.compiled"):
        out = backend(sample, torch.tensor(1.0), tokens)
    assert torch.equal(out, sample * 2 + 1)
    assert not backend.is_compiled and "compilation failed" in backend.fallback_reason
    assert "compilation failed" in caplog.text
    strict = CompiledBackend(model, backend="eager", fullgraph=True, strict=True)
    with pytest.raises(BackendUnavailableError, match="compilation failed"):
        strict(sample, torch.tensor(1.0), tokens)


def test_input_errors_are_not_mistaken_for_compile_failures(unet, contract):
    backend = CompiledBackend(unet, backend="aot_eager")
    sample, timestep, tokens = contract.sample_inputs(2)
    with pytest.raises(InputError, match="timestep has 3 values for a batch of 2"):
        backend(sample, torch.ones(3), tokens)
    with pytest.raises(RuntimeError):
        backend(sample[:, :3], timestep, tokens)  # 3 channels for a 4-channel UNet
    assert backend.is_compiled


def test_precision_option_leaves_the_callers_model_alone(unet):
    backend = CompiledBackend(unet, backend="aot_eager", precision="bf16")
    assert backend.dtype == torch.bfloat16
    assert next(unet.parameters()).dtype == torch.float32
    with pytest.raises(InputError, match="fp32, fp16, bf16"):
        CompiledBackend(unet, precision="fp8")


def test_needs_a_model():
    with pytest.raises(InputError, match="needs the model"):
        CompiledBackend()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FACEFIT_TEST_INDUCTOR") != "1",
    reason="Inductor's CPU compile takes minutes on 2 cores; set FACEFIT_TEST_INDUCTOR=1",
)
def test_inductor_sampling_parity(unet, contract):
    backend = CompiledBackend(unet, strict=True)
    report = sampling_parity(backend, unet, contract, steps=10)
    assert backend.is_compiled
    assert report.within(TOLERANCES["fp32"]), report.summary()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graphs_parity_and_outputs_survive_the_next_call(precision):
    unet = tiny_unet().cuda()
    contract = contract_for(unet, num_tokens=TINY_NUM_TOKENS)
    backend = CompiledBackend(unet, precision=precision, strict=True)
    assert backend.cuda_graphs and backend.mode == "reduce-overhead"
    backend.warmup(contract, (2,))
    first = contract.sample_inputs(2, device="cuda", seed=1)
    second = contract.sample_inputs(2, device="cuda", seed=2)
    out1 = backend(*first)
    out2 = backend(*second)  # a replay must not overwrite what the first call returned
    with torch.no_grad():
        expected1, expected2 = unet(*first).sample, unet(*second).sample
    tol = TOLERANCES[precision].step
    assert float((out1 - expected1).abs().max()) <= tol
    assert float((out2 - expected2).abs().max()) <= tol
    report = sampling_parity(backend, unet, contract, steps=10, device="cuda")
    assert report.within(TOLERANCES[precision]), report.summary()
