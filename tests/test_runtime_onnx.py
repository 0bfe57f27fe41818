"""ONNX export and the ``onnxruntime`` backend against eager PyTorch (CPU, tiny models)."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
import torch

from facefit.errors import InputError
from facefit.testing import DenoiserBackendTests
from facefit_runtime.cache import EngineCache
from facefit_runtime.contract import contract_for
from facefit_runtime.export import DenoiserAdapter, export_cached, export_onnx, read_contract
from facefit_runtime.models import TINY_NUM_TOKENS, tiny_unet
from facefit_runtime.onnxruntime_backend import OnnxRuntimeBackend, session_options
from facefit_runtime.parity import TOLERANCES, sampling_parity


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return EngineCache(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


@pytest.fixture(scope="module")
def contract(unet):
    return contract_for(unet, num_tokens=TINY_NUM_TOKENS, batch=(1, 2, 8))


@pytest.fixture(scope="module")
def onnx_path(unet, contract, cache):
    return export_cached(unet, contract, cache=cache)


@pytest.fixture(scope="module")
def generator():
    from facefit.generator import FaceGenerator

    torch.manual_seed(0)
    model = FaceGenerator(
        image_size=16,
        block_out_channels=(16, 32),
        attention_levels=(False, True),
        cross_attention_dim=32,
        identity_tokens=2,
        text_tokens=4,
        norm_num_groups=8,
    )
    return model.eval().requires_grad_(False)


# -- export --------------------------------------------------------------------------------


def test_export_passes_the_checker_with_named_inputs_and_a_dynamic_batch(onnx_path):
    onnx.checker.check_model(str(onnx_path))
    graph = onnx.load(str(onnx_path)).graph
    assert [i.name for i in graph.input] == ["sample", "timestep", "encoder_hidden_states"]
    assert [o.name for o in graph.output] == ["prediction"]
    for value in (*graph.input, *graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("batch", [1, 2, 4, 8])
def test_dynamic_batch_runs_in_onnxruntime_and_matches_eager(onnx_path, unet, contract, batch):
    session = ort.InferenceSession(
        str(onnx_path), session_options(), providers=["CPUExecutionProvider"]
    )
    sample, timestep, tokens = contract.sample_inputs(batch, seed=batch)
    (got,) = session.run(
        None,
        {
            "sample": sample.numpy(),
            "timestep": timestep.numpy(),
            "encoder_hidden_states": tokens.numpy(),
        },
    )
    with torch.no_grad():
        expected = DenoiserAdapter(unet)(sample, timestep, tokens)
    assert got.shape == (batch, 4, 16, 16)
    assert float((torch.from_numpy(got) - expected).abs().max()) <= TOLERANCES["fp32"].step


def test_contract_is_recorded_beside_the_export(onnx_path, contract):
    recorded, precision = read_contract(onnx_path)
    assert recorded == contract and precision == "fp32"


def test_second_export_of_the_same_weights_comes_from_the_cache(unet, contract, cache, onnx_path):
    mtime = onnx_path.stat().st_mtime_ns
    assert export_cached(unet, contract, cache=cache) == onnx_path
    assert onnx_path.stat().st_mtime_ns == mtime


def test_fp16_export_keeps_float32_inputs_and_half_weights(unet, contract, tmp_path):
    path = export_onnx(unet, tmp_path / "model.onnx", contract, precision="fp16")
    model = onnx.load(str(path))
    assert {i.type.tensor_type.elem_type for i in model.graph.input} == {onnx.TensorProto.FLOAT}
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    big = [w for w in model.graph.initializer if len(w.dims) >= 2]
    assert big and all(w.data_type == onnx.TensorProto.FLOAT16 for w in big)
    assert next(unet.parameters()).dtype == torch.float32, "the caller's model is not changed"
    with pytest.raises(InputError, match="is fp16: onnxruntime on the CPU runs fp32 only"):
        OnnxRuntimeBackend(onnx_path=path)


def test_unknown_precision_is_a_clear_error(unet, contract, tmp_path):
    with pytest.raises(InputError, match="fp32, fp16"):
        export_onnx(unet, tmp_path / "m.onnx", contract, precision="int3")


# -- the backend ---------------------------------------------------------------------------


class TestOnnxRuntimeBackend(DenoiserBackendTests):
    plugin_name = "onnxruntime"
    atol = TOLERANCES["fp32"].step

    @pytest.fixture(autouse=True)
    def _setup(self, unet, contract, onnx_path):
        self._unet, self._contract, self._path = unet, contract, onnx_path

    def make(self):
        return OnnxRuntimeBackend(onnx_path=self._path)

    def reference(self):
        return self._unet

    def inputs(self):
        return self._contract.sample_inputs(2)


def test_scalar_and_integer_timesteps_are_accepted(onnx_path, unet, contract):
    backend = OnnxRuntimeBackend(onnx_path=onnx_path)
    sample, _, tokens = contract.sample_inputs(2)
    with torch.no_grad():
        expected = unet(sample, torch.tensor(321), tokens).sample
    for timestep in (torch.tensor(321), torch.tensor([321, 321]), 321):
        assert float((backend(sample, timestep, tokens) - expected).abs().max()) <= 1e-4


def test_dynamic_and_static_batch_sessions_agree(onnx_path, contract):
    static = OnnxRuntimeBackend(onnx_path=onnx_path)
    dynamic = OnnxRuntimeBackend(onnx_path=onnx_path, static_batch=False)
    for batch in (1, 3):
        inputs = contract.sample_inputs(batch)
        assert torch.allclose(static(*inputs), dynamic(*inputs), atol=1e-5)
    assert set(static._sessions) == {1, 3} and set(dynamic._sessions) == {None}


def test_batch_outside_the_exported_range_is_a_clear_error(onnx_path, contract):
    backend = OnnxRuntimeBackend(onnx_path=onnx_path)
    with pytest.raises(InputError, match=r"outside the exported range \(1, 2, 8\)"):
        backend(*contract.sample_inputs(9))


def test_fp16_on_the_cpu_is_refused_with_the_fix(onnx_path):
    with pytest.raises(InputError, match="precision='fp32'"):
        OnnxRuntimeBackend(onnx_path=onnx_path, precision="fp16")


def test_needs_a_model_or_a_file():
    with pytest.raises(InputError, match="model or an onnx_path"):
        OnnxRuntimeBackend()


def test_created_by_name_from_the_registry(registry, unet, contract, cache):
    backend = registry.create_denoiser_backend(
        "onnxruntime", model=unet, num_tokens=TINY_NUM_TOKENS, cache_dir=cache.root
    )
    inputs = contract.sample_inputs(1)
    with torch.no_grad():
        expected = DenoiserAdapter(unet)(*inputs)
    assert float((backend(*inputs) - expected).abs().max()) <= 1e-4


# -- parity over a whole sampling run --------------------------------------------------------


def test_sampling_parity_on_a_tiny_unet(onnx_path, unet, contract):
    report = sampling_parity(OnnxRuntimeBackend(onnx_path=onnx_path), unet, contract, steps=10)
    assert len(report.step_errors) == 10
    assert report.within(TOLERANCES["fp32"]), report.summary()


def test_sampling_parity_on_the_generator(generator, cache):
    backend = OnnxRuntimeBackend(generator, batch=(1, 2, 4), cache_dir=cache.root)
    contract = backend.contract
    assert (contract.profile.channels, contract.profile.output_channels) == (9, 3)
    report = sampling_parity(backend, generator, contract, steps=25)
    assert report.within(TOLERANCES["fp32"]), report.summary()


def test_generator_sampler_gives_the_same_images_as_eager(generator, cache):
    from facefit.generator import domain_condition
    from facefit_plugins.samplers import DDIMSampler
    from facefit_runtime.eager import EagerBackend

    sampler = DDIMSampler(generator=generator)
    conditions = [domain_condition("photo")]
    run = {"num_images": 2, "steps": 25, "guidance": 3.0, "seed": 7}
    expected = sampler.sample(EagerBackend(generator), conditions, **run)
    backend = OnnxRuntimeBackend(generator, batch=(1, 2, 4), cache_dir=cache.root)
    got = sampler.sample(backend, conditions, **run)
    diff = abs(got.astype(int) - expected.astype(int))
    assert got.shape == expected.shape == (2, 16, 16, 3)
    assert (
        diff.max() <= TOLERANCES["fp32"].image_max and diff.mean() <= TOLERANCES["fp32"].image_mean
    )


def test_v2_generator_exports_and_samples_like_eager(cache):
    """Generator v2 (adaptive norm, reference image, v-prediction) on ONNX Runtime."""
    from facefit.generator import FaceGenerator, domain_condition
    from facefit.types import Condition
    from facefit_plugins.samplers import DDIMSampler
    from facefit_runtime.eager import EagerBackend

    torch.manual_seed(0)
    model = FaceGenerator(
        image_size=16,
        block_out_channels=(16, 32),
        cross_attention_dim=16,
        norm_num_groups=8,
        text_tokens=4,
        conditioning="adanorm",
        reference_image=True,
        prediction_type="v_prediction",
    )
    with torch.no_grad():  # zero-initialised layers would hide the evidence
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model = model.eval().requires_grad_(False)
    backend = OnnxRuntimeBackend(model, batch=(1, 2, 4), cache_dir=cache.root)
    assert (backend.contract.profile.channels, backend.contract.profile.output_channels) == (13, 3)
    face = torch.rand(3, 16, 16) * 2 - 1
    conditions = [
        Condition("reference", tokens=torch.randn(1, 128), spatial=face),
        domain_condition("photo"),
    ]
    run = {"num_images": 2, "steps": 10, "guidance": 3.0, "seed": 7}
    sampler = DDIMSampler(generator=model)
    expected = sampler.sample(EagerBackend(model), conditions, **run)
    got = sampler.sample(backend, conditions, **run)
    diff = abs(got.astype(int) - expected.astype(int))
    assert (
        diff.max() <= TOLERANCES["fp32"].image_max and diff.mean() <= TOLERANCES["fp32"].image_mean
    )


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available(),
    reason="needs onnxruntime-gpu and a CUDA GPU",
)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_execution_provider_with_io_binding(unet, contract, tmp_path, precision):
    model = tiny_unet().cuda()
    backend = OnnxRuntimeBackend(model, contract=contract, precision=precision, cache_dir=tmp_path)
    assert backend.device.type == "cuda"
    inputs = contract.sample_inputs(2, device="cuda")
    out = backend(*inputs)
    assert out.device.type == "cuda"
    with torch.no_grad():
        expected = model(*inputs).sample
    assert float((out - expected).abs().max()) <= TOLERANCES[precision].step
    report = sampling_parity(backend, model, contract, steps=10, device="cuda")
    assert report.within(TOLERANCES[precision]), report.summary()
