"""Finding and loading a generator by name or directory, with no network."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from facefit.errors import InputError, WeightsNotFoundError

if TYPE_CHECKING:
    import torch

    from facefit.generator.model import FaceGenerator

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
"""Where the shipped default model lives (inside the installed package)."""


def resolve_model_dir(name: str | Path = "default") -> Path:
    """``"default"`` → the shipped model; anything else is a model directory."""
    path = DEFAULT_MODEL_DIR if str(name) == "default" else Path(name)
    if not (path / "config.json").is_file():
        if str(name) == "default":
            raise WeightsNotFoundError(
                f"the default generator is not installed (no {path / 'config.json'}); "
                "train one with `facefit train CONFIG.toml` and pass its model directory"
            )
        raise InputError(
            f"{path}: not a generator directory (no config.json); pass a directory written "
            "by `facefit train` or FaceGenerator.save_pretrained"
        )
    return path


def load_generator(
    name: str | Path = "default",
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> FaceGenerator:
    """Load a generator in eval mode with gradients off, on ``device`` in ``dtype``
    (default float32; fp16 weights on disk are widened)."""
    import torch

    from facefit.generator.model import FaceGenerator

    path = resolve_model_dir(name)
    model = FaceGenerator.from_pretrained(
        path, torch_dtype=dtype or torch.float32, low_cpu_mem_usage=False
    )
    log.info("loaded generator from %s (%.2f M parameters)", path, model.parameter_count() / 1e6)
    return model.to(device).eval().requires_grad_(False)
