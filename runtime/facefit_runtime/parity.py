"""Does a backend give the eager model's results? Per step, and after a whole sampling run.

:func:`sampling_parity` runs one diffusers DDIM loop with classifier-free guidance
(conditional and null halves in one batch, as facefit's samplers do) twice: once
through the eager model and once through the backend. At every step of the
backend's trajectory it also evaluates the eager model on the same inputs, which
gives the per-step error free of accumulated drift; the two final images give the
end-to-end difference. :data:`TOLERANCES` states what each precision must meet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Tolerance:
    """Largest acceptable differences from eager fp32.

    ``step`` is the max absolute error of one denoiser call (predictions are
    ~unit-variance noise estimates); ``image_max``/``image_mean`` are in 8-bit
    levels of the final image after the full run.
    """

    step: float
    image_max: int
    image_mean: float


TOLERANCES: dict[str, Tolerance] = {
    # fp32 graphs differ from eager only in summation order: ~5e-6 per call measured;
    # after 25 steps that flips ~5% of pixels across a rounding boundary (1 level).
    "fp32": Tolerance(step=1e-4, image_max=2, image_mean=0.25),
    # fp16 keeps ~3 significant digits: ~1e-3 per call is expected; DDIM is contractive
    # near the end, so the images stay within a few levels. To be confirmed on a GPU.
    "fp16": Tolerance(step=2e-2, image_max=8, image_mean=1.0),
    "bf16": Tolerance(step=8e-2, image_max=16, image_mean=2.0),
}


@dataclass
class ParityReport:
    """Per-step max abs errors and the final-image differences, in 8-bit levels."""

    step_errors: list[float] = field(default_factory=list)
    image_max: int = 0
    image_mean: float = 0.0

    @property
    def worst_step(self) -> float:
        return max(self.step_errors, default=0.0)

    def within(self, tolerance: Tolerance) -> bool:
        return (
            self.worst_step <= tolerance.step
            and self.image_max <= tolerance.image_max
            and self.image_mean <= tolerance.image_mean
        )

    def summary(self) -> str:
        return (
            f"worst step max|Δ| {self.worst_step:.2e}, final image max {self.image_max} "
            f"levels, mean {self.image_mean:.3f} levels over {len(self.step_errors)} steps"
        )


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` images → 8-bit levels (as facefit turns samples into images)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round()


def sampling_parity(
    backend: Any,
    reference: Any,
    contract: Any,
    *,
    steps: int = 25,
    guidance: float = 3.0,
    num_images: int = 1,
    seed: int = 0,
    device: Any = "cpu",
    input_dtype: Any = None,
    scheduler: Any = None,
) -> ParityReport:
    """Compare ``backend`` with ``reference`` (the eager call) over one guided DDIM run.

    The denoiser sees ``2 × num_images`` items per step (conditional + null). When
    the model takes more input channels than it predicts (the generator's spatial
    evidence), fixed random evidence fills the extra channels. ``input_dtype``
    (e.g. ``torch.float16``) is what the backend is fed; the reference gets float32.
    """
    from diffusers import DDIMScheduler

    from facefit_runtime.export import DenoiserAdapter

    profile = contract.profile
    scheduler = scheduler or DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        clip_sample=True,
        timestep_spacing="trailing",
    )
    scheduler.set_timesteps(steps, device=device)
    gen = torch.Generator().manual_seed(seed)
    out_c, size = profile.output_channels, (profile.height, profile.width)
    x0 = torch.randn((num_images, out_c, *size), generator=gen).to(device)
    extra = torch.randn((num_images, profile.channels - out_c, *size), generator=gen).to(device)
    tokens = torch.randn((1, profile.num_tokens, profile.token_dim), generator=gen)
    tokens = torch.cat(
        [tokens.expand(num_images, -1, -1), torch.zeros_like(tokens).expand(num_images, -1, -1)]
    )
    tokens = tokens.to(device)
    extra = torch.cat([extra, torch.zeros_like(extra)])
    eager = DenoiserAdapter(getattr(reference, "denoiser", reference)).eval()

    def inputs(x, t):
        model_input = torch.cat([torch.cat([x, x]), extra], dim=1)
        return model_input, torch.full((2 * num_images,), float(t), device=device)

    def guide(prediction):
        cond, null = prediction.float().chunk(2)
        return torch.lerp(null, cond, guidance)

    report = ParityReport()
    x_eager, x_backend = x0.clone(), x0.clone()
    with torch.inference_mode():
        for t in scheduler.timesteps:
            model_input, timestep = inputs(x_backend, t)
            if input_dtype is not None:
                got = backend(model_input.to(input_dtype), timestep, tokens.to(input_dtype)).float()
            else:
                got = backend(model_input, timestep, tokens).float()
            same_input = eager(model_input, timestep, tokens).float()
            report.step_errors.append(float((got - same_input).abs().max()))
            # DDIM's step keeps no state, so one scheduler advances both trajectories
            x_backend = scheduler.step(guide(got), t, x_backend, return_dict=False)[0]
            eps_eager = guide(eager(*inputs(x_eager, t), tokens))
            x_eager = scheduler.step(eps_eager, t, x_eager, return_dict=False)[0]
    diff = (to_levels(x_eager) - to_levels(x_backend)).abs()
    report.image_max = int(diff.max())
    report.image_mean = float(diff.mean())
    return report
