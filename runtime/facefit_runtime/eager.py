"""Denoiser backend ``eager``: the model called as plain PyTorch.

The reference every other backend is compared with, and the one that works
everywhere torch does. ``model`` is the denoiser module (a
:class:`~facefit.generator.FaceGenerator`'s ``denoiser``, or any module with the
UNet call); a whole ``FaceGenerator`` is accepted and its ``denoiser`` used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from facefit import hookimpl
from facefit.errors import InputError
from facefit.interfaces import DenoiserBackend

if TYPE_CHECKING:
    import torch


class EagerBackend(DenoiserBackend):
    """Plain ``torch`` call of the denoiser, under the caller's inference mode.

    ``device`` (default: where the model is) and ``dtype`` (default: the model's)
    move the model once, when the backend is made.
    """

    host_options = ("model",)
    thread_safe = True  # a module call keeps no state between calls
    name: ClassVar[str] = "eager"

    def __init__(self, model: Any = None, *, device: str | None = None, dtype: Any = None) -> None:
        if model is None:
            raise InputError("denoiser backend 'eager' needs model=<the generator's denoiser>")
        import torch

        module = getattr(model, "denoiser", model)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if device is not None or dtype is not None:
            module = module.to(device=device, dtype=dtype)
        self.model = module.eval()

    def __call__(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        out = self.model(sample, timestep, encoder_hidden_states=encoder_hidden_states)
        return out if not hasattr(out, "sample") else out.sample

    def close(self) -> None:
        self.model = None  # drop the reference; a second close is a no-op


@hookimpl
def register_denoiser_backends(register) -> None:
    register(EagerBackend)
