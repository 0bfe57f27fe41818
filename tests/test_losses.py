"""The diffusion loss and IdentiFace's identity loss, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from facefit import Registry
from facefit.interfaces import LossInputs
from tests.generator_helpers import single_thread  # noqa: F401 (autouse fixture)


class MeanColour(nn.Module):
    """A 'recogniser' whose embedding is the mean RGB of the crop: cosines by hand."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.ReLU(), nn.Flatten())
        self.requires_grad_(False)

    def forward(self, x):
        return self.net(x / 255.0)


def _flat(rgb255, size=8):
    """An image in [-1, 1] whose mean colour is ``rgb255`` (0–255 scale)."""
    colour = torch.tensor(rgb255, dtype=torch.float32) / 127.5 - 1
    return colour.view(3, 1, 1).expand(3, size, size)


def identity_loss(**options):
    return Registry.load().create_loss("identity", **options)


def test_weighting_matches_the_published_formula_on_hand_values():
    # embeddings (mean colours): cosines 1, 0.385 and 0 with the target's (255, 0, 0)
    c = 0.385
    targets = torch.stack([_flat([255, 0, 0])] * 3)
    preds = torch.stack(
        [
            _flat([255, 0, 0]),
            _flat([255 * c, 255 * math.sqrt(1 - c * c), 0]),
            _flat([0, 255, 0]),
        ]
    )
    loss = identity_loss(recognizer=MeanColour(), input_size=8)
    t = torch.tensor([10, 50, 199])
    got = loss(LossInputs(preds, preds, x0=targets, x0_pred=preds, timesteps=t))
    # w = sigmoid(10 (0.385 - s)) for s = 1, 0.385, 0 → 0.0021289, 0.5, 0.9791637
    w = [1 / (1 + math.exp(-10 * (0.385 - s))) for s in (1.0, c, 0.0)]
    assert w == pytest.approx([0.0021289, 0.5, 0.9791637], abs=1e-6)
    expected = 0.1 * (w[0] * 0 + w[1] * (1 - c) + w[2] * 1) / sum(w)
    assert expected == pytest.approx(0.0868609, abs=1e-6)
    assert float(got) == pytest.approx(expected, abs=1e-5)


def test_only_small_timesteps_count():
    targets = torch.stack([_flat([255, 0, 0])] * 2)
    preds = torch.stack([_flat([0, 255, 0]), _flat([255, 0, 0])])
    loss = identity_loss(recognizer=MeanColour(), input_size=8, t_limit=200)
    # the far item is at t = 200 (not < 200): only the perfect item counts → 0
    got = loss(
        LossInputs(preds, preds, x0=targets, x0_pred=preds, timesteps=torch.tensor([200, 3]))
    )
    assert float(got) == pytest.approx(0.0, abs=1e-6)
    none = loss(
        LossInputs(preds, preds, x0=targets, x0_pred=preds, timesteps=torch.tensor([500, 900]))
    )
    assert float(none) == 0.0


def test_gradient_reaches_x0_pred_and_nothing_else():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    x0_pred = (x0 + 0.3 * torch.randn(4, 3, 16, 16, generator=g)).requires_grad_(True)
    target = x0.clone().requires_grad_(True)
    net = TinyConvNet()
    loss = identity_loss(recognizer=net, input_size=32)
    value = loss(
        LossInputs(
            x0_pred, x0_pred, x0=target, x0_pred=x0_pred, timesteps=torch.tensor([0, 10, 100, 150])
        )
    )
    value.backward()
    assert value.item() > 0
    assert x0_pred.grad is not None and x0_pred.grad.abs().sum() > 0
    assert torch.isfinite(x0_pred.grad).all()
    assert target.grad is None  # the real image is a constant
    assert all(p.grad is None for p in net.parameters())


def test_identity_loss_rejects_unknown_recognizer_and_missing_inputs():
    from facefit.errors import InputError

    with pytest.raises(InputError, match="sface"):
        identity_loss(recognizer="arcface")
    with pytest.raises(InputError, match="x0_pred"):
        identity_loss(recognizer=MeanColour())(LossInputs(torch.zeros(1), torch.zeros(1)))


def test_diffusion_loss_is_mse():
    loss = Registry.load().create_loss("diffusion")
    a, b = torch.zeros(2, 3), torch.ones(2, 3) * 2
    assert float(loss(LossInputs(a, b))) == pytest.approx(4.0)
