"""SFace: ONNX Runtime encoder and the torch module rebuilt from the same graph.

The converter and the encoder are first checked on a tiny SFace-shaped ONNX file the
test writes (same input/output names, batch fixed to 1 and weights listed as graph
inputs, like the published file); then on the real model when it is installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from facefit.errors import InputError, WeightsNotFoundError
from facefit.weights.onnx_torch import OnnxGraphModule, UnsupportedOnnxError
from facefit_plugins.face_encoders.sface import SFaceEncoder, load_sface_onnx, load_sface_torch
from tests.sface_helpers import write_tiny_sface


@pytest.fixture
def tiny_sface(tmp_path):
    path = tmp_path / "tiny_sface.onnx"
    write_tiny_sface(path)
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
    normalized = SFaceEncoder(weights=tiny_sface).embed(faces)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, rtol=1e-5)


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
    from facefit.imaging.faces import FaceEmbedder

    paths = sorted((shared_data / "celeba-subset" / "faces").glob("*.jpg"))[:8]
    paths += sorted((shared_data / "fs2k-train" / "sketch").glob("*.jpg"))[:4]
    encoder, module = real_pair
    detector = Registry.load(allow=["yunet"]).create_face_detector("yunet")
    embedder = FaceEmbedder(detector, encoder, sketch_fallback=True)
    crops = np.stack([embedder.align_file(p) for p in paths])
    assert _cosine(encoder.embed_aligned(crops), _torch_embed(module, crops)).min() >= 0.9999
