"""The conformance kits of facefit.testing run on the built-ins they had not covered.

The kit's ddpm sampler and diffusion loss run in tests/test_vendor_safety.py; the
other samplers and losses are checked here the way a vendor's would be.
"""

from __future__ import annotations

from typing import Any

from facefit.interfaces import LossInputs
from facefit.testing import LossTests, SamplerTests
from tests.generator_helpers import single_thread  # noqa: F401 (autouse)


class TestDDIMSamplerKit(SamplerTests):
    plugin_name = "ddim"

    def make(self):
        from facefit_plugins.samplers import DDIMSampler

        return DDIMSampler(generator=self.generator())


class TestDPMSolverSamplerKit(SamplerTests):
    plugin_name = "dpm-solver"

    def make(self):
        from facefit_plugins.samplers import DPMSolverSampler

        return DPMSolverSampler(generator=self.generator())


def _tiny_recognizer() -> Any:
    """A differentiable stand-in for SFace: (N, 3, 16, 16) in [0, 255] → (N, 8)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.Flatten(), nn.LazyLinear(8))


class TestIdentityLossKit(LossTests):
    plugin_name = "identity"

    def make(self):
        from facefit_plugins.losses import IdentityLoss

        # every random timestep counts (t_limit above them), so the loss is never the 0 stub
        return IdentityLoss(recognizer=_tiny_recognizer(), t_limit=1000, input_size=16)


class TestAdaFaceLossKit(LossTests):
    plugin_name = "adaface"

    def make(self):
        import torch

        from facefit_plugins.face_encoders.adaface import adaface_loss

        torch.manual_seed(0)
        # its norm statistics move with every call in training mode, by design (AdaFace's
        # running mean and std); the kit's same-inputs-same-loss check holds in eval mode
        return adaface_loss(num_classes=5, embedding_size=8).eval()

    def inputs(self) -> LossInputs:
        """Raw features of four faces and their identity labels (what a matcher trains on)."""
        import torch

        g = torch.Generator().manual_seed(0)
        features = torch.randn((4, 8), generator=g, requires_grad=True)
        return LossInputs(prediction=features, target=torch.tensor([0, 1, 2, 1]))
