"""Simple sketches, real-sketch normalisation and sketch similarity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facefit.errors import InputError
from facefit.sketch import normalize_sketch, simple_sketch, sketch_similarity
from facefit.testing import SketchExtractorTests
from facefit_plugins.simple_sketch import SimpleSketch


class TestSimpleSketch(SketchExtractorTests):
    plugin_name = "simple-sketch"

    def make(self):
        return SimpleSketch()


def _cartoon_face(seed: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A shaded RGB 'photo' of a face-like figure and a line drawing of the same figure."""
    rng = np.random.default_rng(seed)
    c = size / 128
    photo = np.full((size, size, 3), 200, np.uint8)
    drawing = np.full((size, size), 255, np.uint8)
    centre = (int((64 + rng.integers(-12, 13)) * c), int((64 + rng.integers(-10, 11)) * c))
    axes = (int(rng.integers(28, 42) * c), int(rng.integers(36, 50) * c))
    skin = tuple(int(v) for v in rng.integers(120, 180, 3))
    cv2.ellipse(photo, centre, axes, 0, 0, 360, skin, -1)
    cv2.ellipse(drawing, centre, axes, 0, 0, 360, 0, max(1, int(2 * c)))
    eye_dx, eye_y = int(rng.integers(10, 18) * c), centre[1] - int(rng.integers(6, 16) * c)
    for x in (centre[0] - eye_dx, centre[0] + eye_dx):
        cv2.circle(photo, (x, eye_y), int(5 * c), (30, 30, 30), -1)
        cv2.circle(drawing, (x, eye_y), int(5 * c), 0, max(1, int(2 * c)))
    mouth_y = centre[1] + int(rng.integers(14, 26) * c)
    half = int(rng.integers(8, 16) * c)
    cv2.line(photo, (centre[0] - half, mouth_y), (centre[0] + half, mouth_y), (60, 20, 20), 3)
    cv2.line(drawing, (centre[0] - half, mouth_y), (centre[0] + half, mouth_y), 0, 2)
    return photo, drawing


def test_lines_follow_edges_on_white_paper():
    photo = np.full((128, 128, 3), 230, np.uint8)
    cv2.circle(photo, (64, 64), 30, (40, 40, 40), -1)
    drawing = simple_sketch(photo)
    assert drawing.shape == (128, 128) and drawing.dtype == np.uint8
    ring = np.zeros((128, 128), np.uint8)
    cv2.circle(ring, (64, 64), 29, 1, 5)
    inside = np.zeros_like(ring)
    cv2.circle(inside, (64, 64), 20, 1, -1)
    ink = 255 - drawing.astype(float)
    assert ink[ring == 1].mean() > 60  # a dark line along the circle…
    assert ink[inside == 1].mean() < 10 and ink[:20, :20].mean() < 1  # …on paper


def test_drawing_does_not_depend_on_resolution():
    photo, _ = _cartoon_face(0, 256)
    small = cv2.resize(photo, (128, 128), interpolation=cv2.INTER_AREA)
    assert sketch_similarity(simple_sketch(photo), simple_sketch(small)) > 0.85


def test_own_drawing_is_most_similar_on_synthetic_faces():
    pairs = [_cartoon_face(seed) for seed in range(8)]
    drawings = [simple_sketch(p) for p, _ in pairs]
    scores = np.array([[sketch_similarity(d, s) for _, s in pairs] for d in drawings])
    own = np.diag(scores)
    others = (scores.sum(1) - own) / (len(pairs) - 1)
    assert (own > others).all() and own.mean() > others.mean() + 0.2
    assert (scores.argmax(1) == np.arange(len(pairs))).mean() >= 0.75


def test_similarity_properties():
    _, drawing = _cartoon_face(3)
    assert sketch_similarity(drawing, drawing) == pytest.approx(1.0)
    shifted = np.roll(drawing, 1, axis=1)
    assert sketch_similarity(drawing, shifted) > 0.8
    blank = np.full_like(drawing, 255)
    assert sketch_similarity(drawing, blank) == 0.0
    rgb = np.repeat(drawing[:, :, None], 3, axis=2)
    other = _cartoon_face(4)[1]
    assert sketch_similarity(rgb, other) == pytest.approx(sketch_similarity(other, drawing))
    with pytest.raises(InputError, match="second sketch"):
        sketch_similarity(drawing, drawing.astype(np.float32))


def test_normalize_sketch_stretches_inverts_crops_and_pads():
    _, drawing = _cartoon_face(5)
    faint = (180 - (255 - drawing.astype(np.int32)) * 60 // 255).astype(np.uint8)  # grey lines
    out = normalize_sketch(faint)
    assert out.max() == 255 and np.median(out) == 255 and out.min() < 10
    inverted = normalize_sketch(255 - drawing)  # white lines on black
    assert np.median(inverted) == 255 and sketch_similarity(inverted, drawing) > 0.99
    wide = np.full((50, 100), 255, np.uint8)
    wide[20:30, 45:55] = 0
    square = normalize_sketch(wide, 64)
    assert square.shape == (64, 64) and square[:10].min() == 255  # padded with paper
    crop = normalize_sketch(wide, box=(40, 15, 20, 20))
    assert crop.shape == (20, 20) and crop[5:15, 5:15].max() < 10
    with pytest.raises(InputError, match="does not fit"):
        normalize_sketch(wide, box=(90, 0, 20, 20))


def test_registry_options(registry):
    extractor = registry.create_sketch_extractor("simple-sketch", sigma=1.2)
    photo, _ = _cartoon_face(6)
    assert extractor.extract(photo).shape == (128, 128)
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(extractor.extract(grey), extractor.extract(photo))


@pytest.mark.shared_data
def test_photo_sketch_matches_its_artist_sketch_on_fs2k(shared_data):
    from facefit.images import load_image
    from facefit.splits import fs2k_split, load_fs2k_annotations

    dev = set(fs2k_split(shared_data).dev)
    records = [r for r in load_fs2k_annotations(shared_data) if r["id"] in dev][:30]
    folder = shared_data / "fs2k-train"
    drawings = [simple_sketch(load_image(folder / r["photo"])) for r in records]
    sketches = [normalize_sketch(load_image(folder / r["sketch"])) for r in records]
    scores = np.array([[sketch_similarity(d, s) for s in sketches] for d in drawings])
    own = np.diag(scores)
    others = (scores.sum(1) - own) / (len(records) - 1)
    assert own.mean() > others.mean() + 0.2
    assert (own > others).mean() >= 0.9
