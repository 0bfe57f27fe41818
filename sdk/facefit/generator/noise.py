"""The forward diffusion process used in training, from the model's own schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facefit.errors import InputError

if TYPE_CHECKING:
    import torch


def noise_scheduler(model: Any) -> Any:
    """A DDPM scheduler with ``model``'s training noise schedule (for ``add_noise``)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**model.scheduler_config)


def _alpha_terms(scheduler: Any, timesteps: torch.Tensor, like: torch.Tensor):
    alphas = scheduler.alphas_cumprod.to(device=like.device, dtype=torch_float(like))[timesteps]
    shape = (-1,) + (1,) * (like.dim() - 1)
    return alphas.sqrt().view(shape), (1 - alphas).sqrt().view(shape)


def torch_float(like: torch.Tensor) -> Any:
    import torch

    return torch.float32 if like.dtype in (torch.float16, torch.bfloat16) else like.dtype


def training_target(
    scheduler: Any, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the model should predict: the noise (epsilon) or the velocity (v)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    if kind == "sample":
        return x0
    raise InputError(f"prediction_type {kind!r} is not supported for training")


def predict_x0(
    scheduler: Any, noisy: torch.Tensor, prediction: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """The model's estimate x̂₀ of the clean images (differentiable in ``prediction``)."""
    a, s = _alpha_terms(scheduler, timesteps, noisy)
    kind = scheduler.config.prediction_type
    noisy, prediction = noisy.float(), prediction.float()
    if kind == "epsilon":
        return (noisy - s * prediction) / a
    if kind == "v_prediction":
        return a * noisy - s * prediction
    if kind == "sample":
        return prediction
    raise InputError(f"prediction_type {kind!r} is not supported")


def min_snr_weights(scheduler: Any, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al. 2023) for the model's prediction type.

    ``min(SNR, γ) / SNR`` for epsilon, ``min(SNR, γ) / (SNR + 1)`` for v and
    ``min(SNR, γ)`` for sample prediction: the loss of each timestep as if the
    model predicted x₀, clipped at γ, so the easy small-t steps stop dominating.
    """
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = alphas / (1 - alphas)
    clipped = snr.clamp(max=float(gamma))
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return clipped / snr
    if kind == "v_prediction":
        return clipped / (snr + 1)
    if kind == "sample":
        return clipped
    raise InputError(f"prediction_type {kind!r} is not supported")
