"""A whole pipeline in miniature: a tiny random generator saved to disk, weight-free
encoders and detector, and a small gallery, so the loop runs in about a second."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.generator_helpers import tiny_generator

IDENTITIES = 6


def toy_registry():
    from facefit import Registry
    from tests.plugins import generator_toys
    from tests.plugins.gallery_toys import Toys

    return Registry.load(
        entry_points=True, plugins=[("generator-toys", generator_toys), ("gallery-toys", Toys())]
    )


def save_model(directory: Path, seed: int = 0) -> Path:
    model = tiny_generator(seed)
    model.save_pretrained(directory)
    return directory


def toy_config(model_dir: Path, **settings):
    from facefit.config import parse_config

    data = {
        "pipeline": {"model": str(model_dir), "rounds": 3, "candidates": 3, "steps": 2, **settings},
        "face_detector": {"plugin": "blob"},
        "face_encoder": {"plugin": "tiny-face"},
        "sampler": {"plugin": "ddim"},
    }
    return parse_config(data, "<test>")


def toy_gallery(registry, n: int = IDENTITIES, seed: int = 1):
    """``n`` identities of two 16×16 faces each, embedded with ``tiny-face``."""
    from facefit.gallery import GalleryIndex

    encoder = registry.create_face_encoder("tiny-face")
    rng = np.random.default_rng(seed)
    gallery = GalleryIndex.create(encoder, retriever="exact", registry=registry)
    for i in range(n):
        base = rng.integers(0, 256, (2, 2, 3)).astype(np.float32)
        faces = [
            np.clip(
                np.kron(base, np.ones((8, 8, 1))) + rng.normal(0, 5, (16, 16, 3)), 0, 255
            ).astype(np.uint8)
            for _ in range(2)
        ]
        gallery.add(encoder.embed(np.stack(faces)), f"person{i}", sources=[f"p{i}a", f"p{i}b"])
    return gallery


def toy_sketch(seed: int = 0, size: int = 48) -> np.ndarray:
    """A drawing with some lines on white paper."""
    rng = np.random.default_rng(seed)
    page = np.full((size, size), 255, np.uint8)
    for _ in range(6):
        row = int(rng.integers(4, size - 4))
        page[row, 4 : size - 4] = 20
    page[8:40, 10] = 0
    return page


def toy_lq(seed: int = 0, size: int = 8) -> np.ndarray:
    """A small square low-quality image that is not blank (a coarse random pattern).

    No real detector finds a face in it: evidence using it needs
    ``allow_no_face=("lq",)`` (the toy ``blob`` detector's landmarks miss the template).
    """
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 220, (2, 2, 3)).astype(np.uint8)
    return np.kron(coarse, np.ones((size // 2, size // 2, 1), np.uint8))
