"""Samplers ``ddim``, ``ddpm`` and ``dpm-solver``: diffusers schedulers with guidance.

A sampler is bound to a generator (``generator=`` option: a
:class:`~facefit.generator.FaceGenerator`), whose noise schedule it uses and whose
projections turn the conditions into the denoiser's inputs once per call. The
per-step loop then only runs the scheduler and the :class:`DenoiserBackend`: the
conditional and the null (classifier-free guidance) halves go through the
backend as one batch, into buffers allocated before the loop.

The null half keeps non-evidence conditions (the target domain) and replaces every
evidence modality by its null condition. ``guidance`` 1 skips the null half.

``on_step`` (optional) is called after every step with the number of steps done;
the pipeline reports progress and checks its cancel token there, and stops the
loop by raising from it. Without it the loop pays one ``is None`` test per step.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from facefit import hookimpl
from facefit.errors import InputError
from facefit.interfaces import DenoiserBackend, Sampler
from facefit.types import MODALITIES, Condition

if TYPE_CHECKING:
    import torch


def null_conditions(conditions: list[Condition]) -> list[Condition]:
    """The guidance baseline: evidence nulled, other conditions (the domain) kept."""
    return [c.null() if c.modality in MODALITIES else c for c in conditions]


def initial_noise(num_images: int, size: int, seed: int, device: Any) -> torch.Tensor:
    """Image ``i`` starts from the noise of seed ``seed + i``, drawn on the CPU.

    So a candidate is known by its own seed (not by its place in a batch), and the
    same seed gives the same start on any device.
    """
    import torch

    noise = torch.empty((num_images, 3, size, size))
    for i in range(num_images):
        generator = torch.Generator().manual_seed(seed + i)
        noise[i] = torch.randn((3, size, size), generator=generator)
    return noise.to(device)


class DiffusersSampler(Sampler):
    """Base of the built-in samplers: subclasses name a diffusers scheduler class."""

    scheduler_class: ClassVar[str]
    scheduler_options: ClassVar[dict[str, Any]] = {}
    host_options: ClassVar[tuple[str, ...]] = ("generator",)
    reports_steps: ClassVar[bool] = True
    batches: ClassVar[bool] = True
    thread_safe: ClassVar[bool] = True
    """A fresh scheduler per call and no state between calls: threads may share one."""

    def __init__(self, generator: Any = None, timestep_spacing: str = "trailing") -> None:
        self.generator = generator
        self.timestep_spacing = timestep_spacing

    def make_scheduler(self, model: Any) -> Any:
        """A fresh scheduler with the model's training noise schedule."""
        import diffusers

        cls = getattr(diffusers, self.scheduler_class)
        accepted = inspect.signature(cls.__init__).parameters
        config = {
            **model.scheduler_config,
            "timestep_spacing": self.timestep_spacing,
            **self.scheduler_options,
        }
        return cls(**{k: v for k, v in config.items() if k in accepted})

    def step_options(self, generator: torch.Generator) -> dict[str, Any]:
        """Extra keyword arguments for ``scheduler.step`` (noise source, eta…)."""
        return {"generator": generator}

    def _model(self) -> Any:
        if self.generator is None:
            raise InputError(
                f"sampler {self.name!r} has no generator model; create it with "
                f"generator=<FaceGenerator> (e.g. facefit.generator.load_generator('default'))"
            )
        return self.generator

    def sample(
        self,
        denoiser: DenoiserBackend,
        conditions: list[Condition],
        *,
        num_images: int,
        steps: int,
        guidance: float,
        seed: int,
        on_step: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """``num_images`` images ``(N, S, S, 3)`` uint8 from one piece of evidence.

        Image ``i`` starts from the noise of ``seed + i`` (:func:`initial_noise`); the
        stochastic samplers' step noise comes from ``seed``. ``on_step(done)`` is
        called after each step; an exception it raises stops sampling.
        """
        import torch

        from facefit.generator.conditions import ConditionTensors, tensor_to_images

        if num_images < 1 or steps < 1:
            raise InputError(f"need num_images >= 1 and steps >= 1, got {num_images}, {steps}")
        model = self._model()
        guided = float(guidance) != 1.0
        with torch.inference_mode():
            halves = [model.conditions_to_tensors(conditions)]
            if guided:
                halves.append(model.conditions_to_tensors(null_conditions(conditions)))
            spatial, tokens = model.encode_conditions(ConditionTensors.cat(halves))
            noise = initial_noise(num_images, model.image_size, int(seed), model.device)
            x = self.denoise(
                denoiser,
                spatial.repeat_interleave(num_images, dim=0),
                tokens.repeat_interleave(num_images, dim=0).contiguous(),
                noise,
                steps=steps,
                guidance=guidance,
                seed=seed,
                on_step=on_step,
            )
        return tensor_to_images(x)

    def denoise(
        self,
        denoiser: DenoiserBackend,
        spatial: torch.Tensor,
        tokens: torch.Tensor,
        noise: torch.Tensor,
        *,
        steps: int,
        guidance: float,
        seed: int,
        on_step: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """The guided step loop over a batch of ``N = len(noise)`` images → x₀ in [-1, 1].

        ``spatial`` and ``tokens`` hold one row per image — the conditional rows,
        then (when ``guidance`` is not 1) the null rows in the same order. Stochastic
        steps draw their noise from ``seed``. ``on_step(done)`` follows each step.
        Call under ``torch.inference_mode``.
        """
        import torch

        model = self._model()
        device, dtype, size = model.device, model.dtype, model.image_size
        n = len(noise)
        guided = float(guidance) != 1.0
        halves = 2 if guided else 1
        scheduler = self.make_scheduler(model)
        scheduler.set_timesteps(steps, device=device)
        x = noise * scheduler.init_noise_sigma
        rng = torch.Generator(device=device).manual_seed(int(seed))  # stochastic steps
        # buffers reused by every step: the loop allocates nothing the backend keeps
        model_input = torch.empty(
            (halves * n, 3 + spatial.shape[1], size, size), device=device, dtype=dtype
        )
        model_input[:, 3:] = spatial
        timestep = torch.empty(halves * n, device=device, dtype=torch.float32)
        options = self.step_options(rng)
        weight = float(guidance)
        # host copies of the timesteps: filling from them needs no device sync
        for done, (t, value) in enumerate(
            zip(scheduler.timesteps, scheduler.timesteps.tolist()), start=1
        ):
            scaled = scheduler.scale_model_input(x, t)
            for half in range(halves):
                model_input[half * n : (half + 1) * n, :3] = scaled
            timestep.fill_(value)
            prediction = denoiser(model_input, timestep, tokens).float()
            if guided:
                cond, null = prediction.chunk(2)
                prediction = torch.lerp(null, cond, weight)
            x = scheduler.step(prediction, t, x, **options, return_dict=False)[0]
            if on_step is not None:  # progress and cancellation: the one check per step
                on_step(done)
        return x


class DDIMSampler(DiffusersSampler):
    """DDIM (deterministic for ``eta`` 0): few steps; needs an accurate model (see ``ddpm``)."""

    name: ClassVar[str] = "ddim"
    scheduler_class = "DDIMScheduler"
    scheduler_options: ClassVar[dict[str, Any]] = {"clip_sample": True}

    def __init__(
        self, generator: Any = None, timestep_spacing: str = "trailing", eta: float = 0.0
    ) -> None:
        super().__init__(generator, timestep_spacing)
        self.eta = float(eta)

    def step_options(self, generator: torch.Generator) -> dict[str, Any]:
        return {"generator": generator, "eta": self.eta}


class DDPMSampler(DiffusersSampler):
    """Ancestral DDPM: stochastic, the default. Its fresh noise at each step corrects the
    prediction errors of a small model (the shipped default leaves high-frequency
    noise under deterministic DDIM or DPM-Solver at 20–50 steps, none under DDPM at 25)."""

    name: ClassVar[str] = "ddpm"
    scheduler_class = "DDPMScheduler"
    scheduler_options: ClassVar[dict[str, Any]] = {"clip_sample": True}


class DPMSolverSampler(DiffusersSampler):
    """DPM-Solver++ (multistep, 2nd order): good images in 10–20 steps."""

    name: ClassVar[str] = "dpm-solver"
    scheduler_class = "DPMSolverMultistepScheduler"
    scheduler_options: ClassVar[dict[str, Any]] = {
        "algorithm_type": "dpmsolver++",
        "solver_order": 2,
    }


@hookimpl
def register_samplers(register) -> None:
    register(DDIMSampler)
    register(DDPMSampler)
    register(DPMSolverSampler)
