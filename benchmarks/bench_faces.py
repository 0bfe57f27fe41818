"""Throughput of the face pipeline on the CPU: load + detect + align + embed, and its parts.

    pytest benchmarks/bench_faces.py -o python_files='bench_*.py' --benchmark-enable \\
        --benchmark-json=benchmarks/results/faces_speed.json

Needs the model files (``facefit models install``) and ``../shared/data`` (64 CelebA
photos, 256×256); skips otherwise. ``extra_info["faces_per_s"]`` is the rate per face.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from facefit.errors import WeightsNotFoundError

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEFIT_SHARED_DATA", REPO.parent / "shared" / "data"))
N = 64


@pytest.fixture(scope="module")
def paths() -> list[Path]:
    found = sorted((DATA / "celeba-subset" / "faces").glob("*.jpg"))[:N]
    if len(found) < N:
        pytest.skip(f"needs {N} CelebA photos under {DATA}")
    return found


@pytest.fixture(scope="module")
def embedder():
    from facefit import Registry
    from facefit.imaging.faces import FaceEmbedder

    embedder = FaceEmbedder.from_registry(Registry.load(allow=["yunet", "sface"]), batch_size=N)
    try:
        embedder.embed_aligned(np.zeros((1, 112, 112, 3), np.uint8))  # load both models
        embedder.detect(np.zeros((64, 64, 3), np.uint8))
    except WeightsNotFoundError as exc:
        pytest.skip(str(exc))
    return embedder


@pytest.fixture(scope="module")
def images(paths):
    from facefit.imaging.images import load_image

    return [load_image(p) for p in paths]


@pytest.fixture(scope="module")
def crops(embedder, images):
    return np.stack([embedder.align(image) for image in images])


def _rate(benchmark, faces: int) -> None:
    benchmark.extra_info["faces"] = faces
    benchmark.extra_info["faces_per_s"] = round(faces / benchmark.stats.stats.mean, 2)


def test_pipeline_files_batched(benchmark, embedder, paths):
    """The whole path from JPEG files to embeddings, SFace batches of 64."""
    results = benchmark.pedantic(embedder.embed_files, args=(paths,), rounds=3, iterations=1)
    assert all(r.ok for r in results)
    _rate(benchmark, len(paths))


def test_load_only(benchmark, paths):
    from facefit.imaging.images import load_image

    benchmark.pedantic(lambda: [load_image(p) for p in paths], rounds=3, iterations=1)
    _rate(benchmark, len(paths))


def test_detect_only(benchmark, embedder, images):
    benchmark.pedantic(lambda: [embedder.detect(i) for i in images], rounds=3, iterations=1)
    _rate(benchmark, len(images))


def test_align_only(benchmark, embedder, images):
    from facefit.imaging.faces import align_landmarks, largest

    landmarks = [largest(embedder.detect(i)).landmarks for i in images]
    benchmark.pedantic(
        lambda: [align_landmarks(i, lm, 112) for i, lm in zip(images, landmarks)],
        rounds=3,
        iterations=1,
    )
    _rate(benchmark, len(images))


def test_sface_onnx_batch64(benchmark, embedder, crops):
    benchmark.pedantic(embedder.embed_aligned, args=(crops,), rounds=5, iterations=1)
    _rate(benchmark, len(crops))


def test_sface_onnx_batch1(benchmark, embedder, crops):
    benchmark.pedantic(
        lambda: [embedder.encoder.embed(c[None]) for c in crops], rounds=3, iterations=1
    )
    _rate(benchmark, len(crops))


def test_sface_torch_forward_backward_batch16(benchmark, crops):
    """Cost of the identity loss's recogniser on the CPU (forward + input gradient)."""
    import torch

    from facefit_plugins.face_encoders.sface import load_sface_torch

    module = load_sface_torch()
    x = torch.from_numpy(crops[:16]).permute(0, 3, 1, 2).float()

    def step():
        xi = x.clone().requires_grad_()
        module(xi).square().sum().backward()
        return xi.grad

    benchmark.pedantic(step, rounds=3, iterations=1)
    _rate(benchmark, 16)
