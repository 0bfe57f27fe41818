"""Generating for the gates through the pipeline's own parts, many pieces of evidence per batch.

A :class:`GateRunner` holds one generator with the sampler plugin and denoiser backend
the pipeline would create (``ddpm`` and ``eager`` by default; ``onnxruntime``
exports the model once into the engine cache), its conditioners (the generator's
identity and text encoders) and the gates' settings. Evidence becomes
:class:`~facefit.types.Condition` s exactly as in the loop, and batches of
different evidence go through :func:`facefit.augment.worker.sample_batch`, which
runs the sampler's own step loop. Item ``i`` of a call starts from the noise of
``seed + i``, so two calls over the same items differ only by their evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.settings import Rule, at_least, check_fields
from facefit.types import MODALITIES, Condition, Evidence

log = logging.getLogger(__name__)

__all__ = ["GateRunner", "GateSettings"]


@dataclass(frozen=True)
class GateSettings:
    """How the gates generate (the pipeline's defaults unless changed)."""

    sampler: str = "ddpm"
    backend: str = "eager"
    steps: int = 25
    guidance: float = 3.0
    seed: int = 0
    batch_size: int = 32
    limit: int | None = None
    """At most this many probes per gate (spread over the split); None: all."""
    celeba_per_identity: int = 5
    """Identity-only probes per development CelebA identity (0: every photo)."""

    def __post_init__(self) -> None:
        rules = {
            "steps": at_least(1),
            "batch_size": at_least(1),
            "celeba_per_identity": at_least(0),
            "limit": Rule(lambda v: v is None or v >= 1, "must be at least 1 or None"),
        }
        check_fields(self, rules, error=InputError, where="gates: ", flags=True)


class GateRunner:
    """One generator with its sampler, backend and conditioners (see the module docs).

    ``backend_options`` go to the denoiser backend plugin (e.g. ``cache_dir`` for
    ``onnxruntime``, whose export batch range defaults to the gates' batches).
    """

    def __init__(
        self,
        model: Any,
        settings: GateSettings,
        *,
        registry: Any = None,
        backend_options: dict[str, Any] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        from facefit.registry import Registry

        self.model = model
        self.settings = settings
        self.registry = registry = registry or Registry.load()
        config = model.config
        size = model.image_size
        self.identity_encoder = registry.create("face_encoder", config.face_encoder)
        self.text = registry.create_conditioner(
            "text", encoder=config.text_encoder, registry=registry, image_size=size
        )
        self.sketch = registry.create_conditioner("sketch", image_size=size)
        self.backend = self._backend(registry, dict(backend_options or {}))
        self.sampler = registry.create_hosted("sampler", settings.sampler, {"generator": model})
        self.progress = progress
        self._texts: dict[str, Condition] = {}

    def _backend(self, registry: Any, options: dict[str, Any]) -> Any:
        if self.settings.backend == "onnxruntime" and "batch" not in options:
            largest = 2 * self.settings.batch_size  # the conditional and null halves
            options["batch"] = (1, largest, largest)
        return registry.create_hosted(
            "denoiser_backend", self.settings.backend, {"model": self.model.denoiser}, **options
        )

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def has_reference_image(self) -> bool:
        return bool(getattr(self.model.config, "reference_image", False))

    # -- evidence --------------------------------------------------------------------------

    def identities(self, faces: np.ndarray) -> np.ndarray:
        """Identity embeddings (the generator's encoder) of aligned crops ``(N, S, S, 3)``."""
        from facefit.imaging.faces import resize_aligned

        size = self.identity_encoder.input_size
        crops = np.stack([resize_aligned(f, size) for f in faces])
        return self.identity_encoder.embed(crops)

    def text_condition(self, sentence: str) -> Condition:
        if sentence not in self._texts:
            self._texts[sentence] = self.text(Evidence(text=sentence))
        return self._texts[sentence]

    def conditions(
        self,
        *,
        sketch: np.ndarray | None = None,
        text: str | None = None,
        identity: np.ndarray | None = None,
        face: np.ndarray | None = None,
        domain: str = "photo",
    ) -> list[Condition]:
        """One piece of evidence as the loop gives it to the sampler.

        ``identity`` is the reference embedding and ``face`` the aligned reference
        image (only models with ``reference_image`` look at it); ``sketch`` an aligned
        drawing (the ``sketch`` conditioner normalizes it, as in the loop).
        """
        from facefit.generator.conditions import domain_condition, reference_condition

        out: list[Condition] = []
        if sketch is not None:
            out.append(self.sketch(Evidence(sketch=sketch)))
        if text is not None:
            out.append(self.text_condition(text))
        if identity is not None:
            dim = int(self.model.config.identity_dim)
            out.append(reference_condition(identity, face, self.image_size, dim))
        out.append(domain_condition(domain))
        return out

    # -- generation ------------------------------------------------------------------------

    def _tensors(self, evidence: Sequence[list[Condition]]):
        from facefit.generator.conditions import ConditionTensors

        cond = [self.model.conditions_to_tensors(c) for c in evidence]
        null = [
            self.model.conditions_to_tensors(
                [x.null() if x.modality in MODALITIES else x for x in c]
            )
            for c in evidence
        ]
        return ConditionTensors.cat(cond), ConditionTensors.cat(null)

    def sample(self, evidence: Sequence[list[Condition]]) -> np.ndarray:
        """One face per piece of evidence → ``(N, S, S, 3)`` uint8; item ``i`` from seed ``seed + i``."""
        from facefit.augment.worker import sample_batch

        s = self.settings
        size = self.image_size
        out = np.zeros((len(evidence), size, size, 3), np.uint8)
        for begin in range(0, len(evidence), s.batch_size):
            chunk = evidence[begin : begin + s.batch_size]
            cond, null = self._tensors(chunk)
            seeds = [s.seed + begin + k for k in range(len(chunk))]
            out[begin : begin + len(chunk)] = sample_batch(
                self.model,
                self.backend,
                self.sampler,
                cond,
                null if s.guidance != 1.0 else None,
                seeds,
                steps=s.steps,
                guidance=s.guidance,
            )
            if self.progress is not None:
                self.progress(len(chunk))
        return out

    def predict_x0(
        self, evidence: Sequence[list[Condition]], clean: np.ndarray, timestep: int
    ) -> np.ndarray:
        """The model's x̂₀ ``(N, 3, S, S)`` in [-1, 1] for ``clean`` faces noised to ``timestep``.

        Item ``i`` is noised with the noise of seed ``seed + i``; the prediction is the
        conditional one (no guidance), through the same backend as sampling.
        """
        import torch

        from facefit.generator.conditions import images_to_tensor
        from facefit.generator.noise import noise_scheduler, predict_x0

        s = self.settings
        scheduler = noise_scheduler(self.model)
        out = []
        for begin in range(0, len(evidence), s.batch_size):
            chunk = evidence[begin : begin + s.batch_size]
            cond, _ = self._tensors(chunk)
            n = len(chunk)
            x0 = images_to_tensor(clean[begin : begin + n])
            noise = torch.stack(
                [
                    torch.randn(
                        x0.shape[1:], generator=torch.Generator().manual_seed(s.seed + begin + k)
                    )
                    for k in range(n)
                ]
            )
            t = torch.full((n,), int(timestep), dtype=torch.long)
            noisy = scheduler.add_noise(x0, noise, t)
            with torch.inference_mode():
                spatial, tokens = self.model.encode_conditions(cond)
                model = self.model
                sample = torch.cat([noisy.to(model.device, model.dtype), spatial], dim=1)
                prediction = self.backend(
                    sample.contiguous(), t.float().to(model.device), tokens.contiguous()
                )
            x0_hat = predict_x0(scheduler, noisy, prediction.float().cpu(), t)
            out.append(x0_hat.clamp(-1, 1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 3, self.image_size, self.image_size))
