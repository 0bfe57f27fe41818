"""Low-quality degradations and normalization of low-quality frames."""

from __future__ import annotations

import numpy as np
import pytest

from facefit.errors import InputError
from facefit.imaging.degrade import (
    Degradation,
    downscale,
    lq_similarity,
    normalize_lq,
    random_degradation,
)
from facefit.testing import random_faces


def _high_frequency(image: np.ndarray) -> float:
    grey = image.astype(np.float32).mean(2)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


FACE = random_faces(1, 96, seed=3)[0]


@pytest.mark.parametrize("size", [8, 16, 32])
def test_downscale_shapes(size):
    small = downscale(FACE, size)
    assert small.shape == (size, size, 3) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, downscale(FACE, size))


def test_degradation_is_deterministic_per_seed():
    d = Degradation(size=16, blur=0.7, noise=6.0, jpeg_quality=40)
    a, b, c = d.apply(FACE, seed=1), d.apply(FACE, seed=1), d.apply(FACE, seed=2)
    assert a.shape == (16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    clean = Degradation(size=16)
    np.testing.assert_array_equal(clean.apply(FACE, seed=1), clean.apply(FACE, seed=2))


def test_each_step_does_what_it_says():
    plain = Degradation(size=32).apply(FACE)
    assert _high_frequency(Degradation(size=32, blur=1.5).apply(FACE)) < _high_frequency(plain)
    noisy = Degradation(size=32, noise=10.0).apply(FACE)
    assert 6 < np.std(noisy.astype(float) - plain) < 14
    errors = [
        np.abs(Degradation(size=32, jpeg_quality=q).apply(FACE).astype(int) - plain).mean()
        for q in (20, 100)
    ]
    assert errors[0] > 2 * errors[1] > 0  # re-encoded, and lower quality loses more


def test_random_degradation_reproducible_and_varied():
    assert random_degradation(5) == random_degradation(5)
    draws = [random_degradation(seed) for seed in range(60)]
    assert {d.size for d in draws} == {8, 16, 32}
    assert any(d.jpeg_quality is None for d in draws) and any(d.jpeg_quality for d in draws)
    assert all(0 <= d.blur <= 1.0 and 0 <= d.noise <= 8.0 for d in draws)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    assert [random_degradation(rng_a) for _ in range(3)] == [
        random_degradation(rng_b) for _ in range(3)
    ]
    assert random_degradation(1, sizes=[8]).size == 8


def test_normalize_lq_shapes_and_content():
    small = Degradation(size=8).apply(FACE)
    up = normalize_lq(small, 64)
    assert up.shape == (64, 64, 3) and up.dtype == np.uint8
    correlation = np.corrcoef(downscale(up, 8).ravel(), small.ravel())[0, 1]
    assert correlation > 0.9  # the same picture, enlarged
    grey = np.full((10, 20), 77, np.uint8)  # grey, not square
    out = normalize_lq(grey, 32)
    assert out.shape == (32, 32, 3) and (out == 77).all()
    np.testing.assert_array_equal(normalize_lq(FACE, 96), FACE)
    assert normalize_lq(FACE, 48).shape == (48, 48, 3)
    nearest = normalize_lq(small, 64, method="nearest")
    np.testing.assert_array_equal(nearest[::8, ::8], small)


def test_lq_similarity_prefers_the_source_face():
    faces = random_faces(6, 64, seed=11)
    lqs = [Degradation(size=16, blur=0.5, noise=3.0).apply(f, seed=i) for i, f in enumerate(faces)]
    scores = np.array([[lq_similarity(f, lq) for lq in lqs] for f in faces])
    assert (scores.argmax(1) == np.arange(6)).all()
    assert lq_similarity(faces[0], downscale(faces[0], 16)) == pytest.approx(1.0)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(InputError, match="JPEG quality"):
        Degradation(jpeg_quality=0)
    with pytest.raises(InputError, match="size"):
        Degradation(size=0)
    with pytest.raises(InputError, match="unknown method"):
        normalize_lq(FACE, 64, method="lanczos9")
    with pytest.raises(InputError, match="uint8"):
        normalize_lq(FACE.astype(np.float32), 64)
    with pytest.raises(InputError, match="sizes"):
        random_degradation(0, sizes=[])


@pytest.mark.shared_data
def test_real_photos_match_their_own_16px_copies(shared_data):
    import cv2

    from facefit.datasets.splits import fs2k_split, load_fs2k_annotations
    from facefit.imaging.images import load_image

    dev = set(fs2k_split(shared_data).dev)
    records = [r for r in load_fs2k_annotations(shared_data) if r["id"] in dev][:20]
    photos = [
        cv2.resize(load_image(shared_data / "fs2k-train" / r["photo"]), (128, 128)) for r in records
    ]
    lqs = [random_degradation(i, sizes=[16]).apply(p, seed=i) for i, p in enumerate(photos)]
    scores = np.array([[lq_similarity(p, lq) for lq in lqs] for p in photos])
    assert (scores.argmax(1) == np.arange(len(photos))).mean() >= 0.9
