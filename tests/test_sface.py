"""SFace: ONNX Runtime encoder and the torch module rebuilt from the same graph.

The converter and the encoder are first checked on a tiny SFace-shaped ONNX file the
test writes (same input/output names, batch fixed to 1 and weights listed as graph
inputs, like the published file); then on the real model when it is installed.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from facefit.errors import InputError, WeightsNotFoundError
from facefit.onnx_torch import OnnxGraphModule, UnsupportedOnnxError
from facefit_plugins.sface import SFaceEncoder, load_sface_onnx, load_sface_torch


def _tiny_sface(path, seed: int = 0) -> None:
    """An SFace-shaped graph: normalise, conv/BN/PReLU, depthwise, asymmetric pad, FC + BN."""
    rng = np.random.default_rng(seed)

    def init(name, *shape, scale=0.1, positive=False):
        value = rng.normal(0, scale, shape).astype(np.float32)
        return numpy_helper.from_array(np.abs(value) + 0.5 if positive else value, name)

    weights = [
        numpy_helper.from_array(np.array([127.5], np.float32), "scalar_op1"),
        numpy_helper.from_array(np.array([0.0078125], np.float32), "scalar_op2"),
        init("c1_w", 8, 3, 3, 3, scale=0.3),
        init("bn_g", 8, positive=True),
        init("bn_b", 8),
        init("bn_m", 8),
        init("bn_v", 8, positive=True),
        init("pr", 8, 1, 1),
        init("dw_w", 8, 1, 3, 3, scale=0.3),
        init("c2_w", 4, 8, 1, 1, scale=0.3),
        init("c2_b", 4),
        init("fc_w", 128, 4 * 14 * 14, scale=0.05),
        init("fc_b", 128),
        init("f_g", 128, positive=True),
        init("f_b", 128),
        init("f_m", 128),
        init("f_v", 128, positive=True),
    ]
    nodes = [
        helper.make_node("Sub", ["data", "scalar_op1"], ["s"]),
        helper.make_node("Mul", ["s", "scalar_op2"], ["m"]),
        helper.make_node(
            "Conv", ["m", "c1_w"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]
        ),
        helper.make_node(
            "BatchNormalization", ["c1", "bn_g", "bn_b", "bn_m", "bn_v"], ["bn"], epsilon=1e-3
        ),
        helper.make_node("PRelu", ["bn", "pr"], ["p"]),
        helper.make_node(
            "Conv",
            ["p", "dw_w"],
            ["dw"],
            kernel_shape=[3, 3],
            pads=[0, 0, 1, 1],
            strides=[2, 2],
            group=8,
        ),
        helper.make_node(
            "Conv", ["dw", "c2_w", "c2_b"], ["c2"], kernel_shape=[1, 1], strides=[2, 2]
        ),
        helper.make_node("Dropout", ["c2"], ["d"], ratio=0.4),
        helper.make_node("Flatten", ["d"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["g"], transB=1),
        helper.make_node(
            "BatchNormalization", ["g", "f_g", "f_b", "f_m", "f_v"], ["fc1"], epsilon=2e-5
        ),
    ]
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])]
    inputs += [
        helper.make_tensor_value_info(w.name, TensorProto.FLOAT, list(w.dims)) for w in weights
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-sface",
        inputs,
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 128])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture
def tiny_sface(tmp_path):
    path = tmp_path / "tiny_sface.onnx"
    _tiny_sface(path)
    return path


def _faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _torch_embed(module: torch.nn.Module, faces: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(faces).permute(0, 3, 1, 2).float()).numpy()


def test_published_layout_is_fixed_for_batching(tiny_sface):
    model = load_sface_onnx(tiny_sface)
    assert [i.name for i in model.graph.input] == ["data"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_encoder_batches_match_single_runs(tiny_sface):
    faces = _faces(5)
    batched = SFaceEncoder(weights=tiny_sface, batch_size=2).embed_aligned(faces)
    single = np.concatenate(
        [SFaceEncoder(weights=tiny_sface).embed_aligned(f[None]) for f in faces]
    )
    assert batched.shape == (5, 128)
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5)
    normalised = SFaceEncoder(weights=tiny_sface).embed(faces)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0, rtol=1e-5)


def test_encoder_rejects_unaligned_input(tiny_sface):
    with pytest.raises(InputError, match="112, 112, 3"):
        SFaceEncoder(weights=tiny_sface).embed(np.zeros((2, 100, 100, 3), np.uint8))


def test_torch_module_matches_onnx_runtime_and_has_gradients(tiny_sface):
    faces = _faces(4, seed=3)
    reference = SFaceEncoder(weights=tiny_sface).embed_aligned(faces)
    module = load_sface_torch(tiny_sface)
    assert not module.training
    ours = _torch_embed(module, faces)
    assert _cosine(reference, ours).min() >= 0.9999
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-4)
    x = torch.from_numpy(faces[:2]).permute(0, 3, 1, 2).float().requires_grad_()
    module(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in module.parameters())


def test_converter_refuses_unknown_operators():
    node = helper.make_node("Softmax", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    with pytest.raises(UnsupportedOnnxError, match="Softmax"):
        OnnxGraphModule(helper.make_model(graph))


def test_missing_weights_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFIT_HOME", str(tmp_path))
    monkeypatch.delenv("FACEFIT_SFACE_PATH", raising=False)
    with pytest.raises(WeightsNotFoundError, match="facefit models install"):
        SFaceEncoder().embed_aligned(_faces(1))
    with pytest.raises(WeightsNotFoundError, match="facefit models install"):
        load_sface_torch()


# -- the real model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_sface():
    from facefit.weights import resolve

    try:
        return resolve("sface")
    except WeightsNotFoundError as exc:
        pytest.skip(f"SFace not installed ({exc})")


@pytest.fixture(scope="module")
def real_pair(real_sface):
    """The real model in ONNX Runtime and as a torch module, loaded once."""
    return SFaceEncoder(weights=real_sface), load_sface_torch(real_sface)


def test_real_sface_matches_opencv_on_bgr_convention(real_sface):
    import cv2

    # a smooth synthetic face-sized image whose channels differ, so a swap would show
    rng = np.random.default_rng(0)
    face = cv2.GaussianBlur(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8), (0, 0), 3)
    face[..., 0] //= 3
    recognizer = cv2.FaceRecognizerSF.create(str(real_sface), "")
    opencv = recognizer.feature(cv2.cvtColor(face, cv2.COLOR_RGB2BGR)).reshape(1, -1)
    ours = SFaceEncoder(weights=real_sface).embed_aligned(face[None])
    assert _cosine(opencv, ours)[0] > 0.99999


def test_real_sface_torch_parity_synthetic(real_pair):
    encoder, module = real_pair
    faces = _faces(6, seed=11)
    assert _cosine(encoder.embed_aligned(faces), _torch_embed(module, faces)).min() >= 0.9999


def test_real_sface_torch_parity_real_faces(real_pair, shared_data):
    from facefit import Registry
    from facefit.faces import FaceEmbedder

    paths = sorted((shared_data / "celeba-subset" / "faces").glob("*.jpg"))[:8]
    paths += sorted((shared_data / "fs2k-train" / "sketch").glob("*.jpg"))[:4]
    encoder, module = real_pair
    detector = Registry.load(allow=["yunet"]).create_face_detector("yunet")
    embedder = FaceEmbedder(detector, encoder, sketch_fallback=True)
    crops = np.stack([embedder.align_file(p) for p in paths])
    assert _cosine(encoder.embed_aligned(crops), _torch_embed(module, crops)).min() >= 0.9999
