"""AdaFace: IR backbones, the official checkpoint layout, and the adaptive-margin loss."""

from __future__ import annotations

import argparse
import functools
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from facefit.errors import InputError, PluginOptionError, WeightsNotFoundError
from facefit.interfaces import LossInputs
from facefit.testing import FaceEncoderTests, random_faces
from facefit_plugins.face_encoders.adaface import AdaFaceEncoder
from facefit_plugins.face_encoders.adaface_net import (
    AdaFaceHead,
    AdaFaceLoss,
    Backbone,
    infer_arch,
    load_backbone,
)


def _save_official(model: Backbone, path: Path, hparams: bool = True) -> Path:
    """Save like AdaFace's PyTorch Lightning training: 'model.' and 'head.' keys."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["head.kernel"] = torch.randn(512, 10)
    checkpoint = {"state_dict": state, "epoch": 3, "global_step": 100}
    if hparams:
        checkpoint["hyper_parameters"] = argparse.Namespace(arch="ir_18", m=0.4, h=0.333)
    torch.save(checkpoint, path)
    return path


@functools.cache
def _tiny_checkpoint() -> tuple[Path, Backbone]:
    """A random IR-18 with non-trivial BN statistics, saved in the official layout."""
    torch.manual_seed(0)
    model = Backbone("ir_18")
    model.train()
    with torch.no_grad():  # fill BN running statistics so eval mode is not an identity
        model(torch.randn(4, 3, 112, 112))
    model.eval()
    folder = Path(tempfile.mkdtemp(prefix="facefit-adaface-"))
    return _save_official(model, folder / "adaface_ir18_test.ckpt"), model


@functools.cache
def _encoder() -> AdaFaceEncoder:
    return AdaFaceEncoder(checkpoint=str(_tiny_checkpoint()[0]))


class TestAdaFaceEncoder(FaceEncoderTests):
    plugin_name = "adaface"

    def make(self):
        return _encoder()


def test_official_layout_loads_and_matches_the_saved_model():
    path, model = _tiny_checkpoint()
    loaded = load_backbone(path)
    assert loaded.arch == "ir_18" and not loaded.training
    faces = random_faces(2, 112, seed=4)
    # AdaFace's own preprocessing: BGR, (x/255 - 0.5)/0.5, NCHW
    bgr = ((faces[:, :, :, ::-1] / 255.0) - 0.5) / 0.5
    x = torch.tensor(bgr.transpose(0, 3, 1, 2).copy()).float()
    with torch.no_grad():
        expected, norms = model(x)
    assert norms.shape == (2, 1) and (norms > 0).all()
    got = _encoder().embed(faces)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    # BGR order matters: the same faces in RGB order embed differently
    swapped = _encoder().embed(faces[:, :, :, ::-1].copy())
    assert float((got * swapped).sum(1).min()) < 0.9999


@pytest.mark.parametrize(
    ("arch", "units", "se"), [("ir_50", 24, False), ("ir_101", 49, False), ("ir_se_50", 24, True)]
)
def test_architectures_have_the_official_layout(arch, units, se):
    model = Backbone(arch)
    state = model.state_dict()
    assert len(model.body) == units
    assert infer_arch(state) == arch
    assert any(".se_block.fc1.weight" in k for k in state) == se
    # names as in AdaFace's net.py
    keys = (
        "input_layer.0.weight",
        "body.0.res_layer.1.weight",
        "body.3.shortcut_layer.0.weight",
        "output_layer.3.weight",
        "output_layer.4.running_var",
    )
    for key in keys:
        assert key in state, key
    assert state["output_layer.3.weight"].shape == (512, 512 * 7 * 7)


def test_wrong_arch_missing_and_foreign_checkpoints_are_clear_errors(tmp_path):
    path, _ = _tiny_checkpoint()
    with pytest.raises(InputError, match="ir_18"):
        AdaFaceEncoder(checkpoint=str(path), arch="ir_50").embed(random_faces(1, 112))
    with pytest.raises(WeightsNotFoundError, match="option checkpoint"):
        AdaFaceEncoder(checkpoint=str(tmp_path / "missing.ckpt")).embed(random_faces(1, 112))
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(InputError, match="model\\."):
        load_backbone(tmp_path / "other.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_backbone(tmp_path / "junk.ckpt")
    with pytest.raises(InputError, match="unknown arch"):
        AdaFaceEncoder(checkpoint=str(path), arch="resnet")


def test_registry_requires_a_checkpoint(registry):
    with pytest.raises(PluginOptionError, match="checkpoint"):
        registry.create_face_encoder("adaface")
    encoder = registry.create_face_encoder("adaface", checkpoint=str(_tiny_checkpoint()[0]))
    assert encoder.version.startswith("ir_18-")
    loss = registry.create_loss("adaface", num_classes=5, embedding_size=8)
    assert isinstance(loss, AdaFaceLoss)


# -- the loss ------------------------------------------------------------------------------


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=1, keepdim=True)


def test_gradients_reach_features_and_class_centres():
    torch.manual_seed(1)
    loss_fn = AdaFaceLoss(num_classes=6, embedding_size=16)
    features = torch.randn(8, 16, requires_grad=True)
    labels = torch.randint(0, 6, (8,))
    loss = loss_fn(LossInputs(prediction=features, target=labels))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert loss_fn.head.kernel.grad is not None and loss_fn.head.kernel.grad.abs().sum() > 0


def test_margin_adapts_to_feature_norm_as_in_the_paper():
    """ẑ=−1 → ArcFace cos(θ+m); ẑ=0 → CosFace cos θ − m; ẑ=+1 → cos(θ−m) − 2m."""
    m, s = 0.4, 64.0
    head = AdaFaceHead(num_classes=3, embedding_size=4, m=m, h=0.333, s=s).eval()
    with torch.no_grad():
        head.kernel.copy_(torch.eye(4)[:, :3])  # class c's centre is axis c
        head.batch_mean.fill_(20.0)
        head.batch_std.fill_(5.0)
    theta = 1.0
    embedding = torch.tensor([[math.cos(theta), math.sin(theta), 0.0, 0.0]])
    label = torch.tensor([0])
    expected = {
        1.0: math.cos(theta + m),  # low norm: low quality, angular margin
        20.0: math.cos(theta) - m,  # average norm: additive margin
        60.0: math.cos(theta - m) - 2 * m,  # high norm: emphasise hard samples
    }
    for norm, target in expected.items():
        logits = head(embedding, torch.tensor([[norm]]), label)
        assert logits[0, 0].item() == pytest.approx(s * target, abs=1e-3)
        assert logits[0, 1].item() == pytest.approx(s * math.sin(theta), abs=1e-3)  # no margin
    # and the scaler is monotonic in the norm, clipped to [-1, 1]
    scalers = head.margin_scaler(torch.tensor([[0.0], [15.0], [20.0], [25.0], [99.0]]))
    assert scalers.flatten().tolist() == pytest.approx([-1.0, -0.333, 0.0, 0.333, 1.0], abs=1e-3)


def test_running_batch_statistics_use_t_alpha():
    head = AdaFaceHead(num_classes=3, embedding_size=4, t_alpha=0.01).train()
    norms = torch.tensor([[10.0], [30.0]])
    head(_unit(torch.randn(2, 4)), norms, torch.tensor([0, 1]))
    assert head.batch_mean.item() == pytest.approx(0.99 * 20 + 0.01 * 20.0)
    assert head.batch_std.item() == pytest.approx(0.99 * 100 + 0.01 * norms.std().item())
    head.eval()
    head(_unit(torch.randn(2, 4)), norms * 3, torch.tensor([0, 1]))
    assert head.batch_mean.item() == pytest.approx(20.0)  # evaluation does not move them


def test_loss_falls_on_a_toy_problem():
    torch.manual_seed(0)
    centres = torch.randn(4, 10) * 3
    labels = torch.arange(4).repeat_interleave(16)
    points = centres[labels] + torch.randn(64, 10)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    loss_fn = AdaFaceLoss(num_classes=4, embedding_size=8)
    optimiser = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=1e-2)
    losses = []
    for _ in range(40):
        loss = loss_fn(LossInputs(prediction=model(points), target=labels))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
    with torch.no_grad():
        embeddings = _unit(model(points))
        centres_n = _unit(loss_fn.head.kernel.T)
        accuracy = ((embeddings @ centres_n.T).argmax(1) == labels).float().mean()
    assert accuracy == 1.0


def test_loss_accepts_backbone_outputs_and_rejects_bad_shapes():
    loss_fn = AdaFaceLoss(num_classes=3, embedding_size=4)
    embeddings, norms = _unit(torch.randn(5, 4)), torch.rand(5, 1) * 30
    labels = torch.tensor([0, 1, 2, 0, 1])
    value = loss_fn(LossInputs(prediction=embeddings, target=labels, extra={"norms": norms}))
    assert torch.isfinite(value)
    with pytest.raises(InputError, match="labels"):
        loss_fn(LossInputs(prediction=embeddings, target=labels[:3]))
