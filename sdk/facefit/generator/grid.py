"""Sample grids: evidence, generated face and true photo side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.generator.conditions import (
    degrade,
    domain_condition,
    images_to_tensor,
    lq_tensor,
    sketch_tensor,
    tensor_to_images,
)
from facefit.types import Condition

if TYPE_CHECKING:
    from facefit.generator.training.data import TrainingPack

GRID_LQ_SIZE = 16


def pack_conditions(model: Any, pack: TrainingPack, index: int, lq_size: int = GRID_LQ_SIZE):
    """Conditions for one pack item as an investigator would have them: its sketch,
    a ``lq_size`` copy of its photo and its sentence (no reference identity)."""
    import torch

    size = model.image_size
    photo = images_to_tensor(pack.photos[index : index + 1])
    lq = lq_tensor(degrade(photo, lq_size), size)
    conditions = [
        Condition("sketch", spatial=sketch_tensor(pack.sketches[index], size)[0]),
        Condition("lq", spatial=lq[0]),
        domain_condition("photo"),
    ]
    row = int(pack.text_index[index])
    if row >= 0:
        tokens = torch.from_numpy(pack.text_tokens[row].astype(np.float32))
        conditions.append(Condition("text", tokens=tokens))
    return conditions, tensor_to_images(lq)[0]


def evidence_grid(
    model: Any,
    pack: TrainingPack,
    path: str | Path,
    *,
    count: int = 4,
    steps: int = 25,
    guidance: float = 2.0,
    seed: int = 0,
    sampler: str = "ddpm",
    scale: int = 2,
) -> Path:
    """Write a PNG with one row per item: sketch | low-quality copy | generated | photo.

    Items are drawn reproducibly from ``seed``, preferring those with an artist's sketch.
    """
    from PIL import Image

    from facefit.registry import Registry

    registry = Registry.load()
    backend = registry.create_hosted("denoiser_backend", "eager", {"model": model.denoiser})
    sampler_impl = registry.create_hosted("sampler", sampler, {"generator": model})
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(pack.real_sketch) if pack.real_sketch.any() else np.arange(len(pack))
    chosen = rng.choice(pool, size=min(count, len(pool)), replace=False)
    rows = []
    for i, index in enumerate(sorted(chosen.tolist())):
        conditions, lq = pack_conditions(model, pack, index)
        generated = sampler_impl.sample(
            backend, conditions, num_images=1, steps=steps, guidance=guidance, seed=seed + i
        )[0]
        sketch = np.repeat(pack.sketches[index][..., None], 3, axis=2)
        rows.append(np.concatenate([sketch, lq, generated, pack.photos[index]], axis=1))
    grid = np.concatenate(rows, axis=0)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
