"""Reference denoisers with random weights, for parity tests, benchmarks and the CLI.

Nothing is downloaded: each UNet is built from its diffusers config values
written here. ``tiny`` runs a step in milliseconds on a CPU (tests); ``sd15`` has
Stable Diffusion 1.5's UNet architecture (860M parameters, 64×64×4 latents for
512² images, 77 text tokens of 768) for GPU benchmarks against published
figures; ``default`` is facefit's generator denoiser (see :func:`generator_model`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from facefit_runtime.contract import ExportContract, contract_for

log = logging.getLogger(__name__)

SD15_NUM_TOKENS = 77
TINY_NUM_TOKENS = 8

SD15_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
"""Stable Diffusion 1.5's ``unet/config.json`` values that define the architecture."""

TINY_CONFIG: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
}
"""A UNet with every kind of block SD1.5 has (cross-attention down/up, resnets), in miniature."""


def _seeded_unet(config: dict[str, Any], seed: int) -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNet2DConditionModel(**config)
    return model.eval().requires_grad_(False)


def tiny_unet(seed: int = 0) -> torch.nn.Module:
    """A ~0.8M-parameter ``UNet2DConditionModel`` (16×16×4, 8 tokens of 32) with random weights."""
    return _seeded_unet(TINY_CONFIG, seed)


def sd15_unet(seed: int = 0) -> torch.nn.Module:
    """A ``UNet2DConditionModel`` with SD1.5's architecture and random weights (fp32, ~3.4 GB)."""
    return _seeded_unet(SD15_CONFIG, seed)


@dataclass
class ReferenceModel:
    """A denoiser to run, its export contract, what it is, and its generator if any."""

    denoiser: torch.nn.Module
    contract: ExportContract
    description: str
    generator: Any = None


def generator_model(name: str = "default", seed: int = 0) -> ReferenceModel:
    """facefit's generator denoiser: the installed model ``name`` (``default`` or a folder).

    When the default model is not installed, the generator's default configuration
    with random weights stands in (same architecture and cost: fine for timing and
    parity, meaningless images) and the description says so.
    """
    from facefit.errors import WeightsNotFoundError
    from facefit.generator import FaceGenerator, load_generator

    try:
        generator = load_generator(name)
        what = f"generator {name!r}"
    except WeightsNotFoundError:
        if name != "default":
            raise
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = FaceGenerator().eval().requires_grad_(False)
        what = "generator default config, random weights (no trained default model installed)"
    denoiser = generator.denoiser
    params = sum(p.numel() for p in denoiser.parameters()) / 1e6
    return ReferenceModel(
        denoiser, contract_for(denoiser), f"{what}, {params:.2f} M parameters", generator
    )


def load_model(name: str, seed: int = 0) -> ReferenceModel:
    """A model by name: ``tiny``, ``sd15``, ``default`` or a generator directory."""
    if name == "tiny":
        model = tiny_unet(seed)
        contract = contract_for(model, num_tokens=TINY_NUM_TOKENS)
        return ReferenceModel(model, contract, "tiny UNet2DConditionModel, random weights")
    if name == "sd15":
        model = sd15_unet(seed)
        contract = contract_for(model, num_tokens=SD15_NUM_TOKENS)
        return ReferenceModel(model, contract, "SD1.5-architecture UNet, random weights")
    return generator_model(name, seed)
