"""The ``dlib`` grading encoder: a clear error without dlib, real descriptors with it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from facefit.errors import PluginError, WeightsNotFoundError


def test_missing_dlib_says_how_to_install(monkeypatch):
    from facefit_plugins.face_encoders import dlib as dlib_encoder

    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    with pytest.raises(PluginError, match=r"pip install 'facefit\[eval\]'"):
        dlib_encoder.DlibEncoder()


def test_plugin_registers_without_importing_dlib(monkeypatch):
    from facefit import Registry

    monkeypatch.setitem(sys.modules, "dlib", None)
    registry = Registry.load(allow=["dlib"])
    assert registry.list_face_encoders() == ["dlib"]  # listing never needs dlib
    with pytest.raises(PluginError, match="facefit\\[eval\\]"):
        registry.create_face_encoder("dlib")


@pytest.fixture(scope="module")
def dlib_encoder():
    pytest.importorskip("dlib", reason="dlib not installed (pip install 'facefit[eval]')")
    from facefit_plugins.face_encoders.dlib import DlibEncoder

    encoder = DlibEncoder()
    try:
        encoder._load()
    except WeightsNotFoundError as exc:
        pytest.skip(f"dlib model files not installed ({exc})")
    return encoder


def test_descriptors_of_synthetic_crops(dlib_encoder):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)
    vectors = dlib_encoder.embed(crops)
    assert vectors.shape == (3, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(dlib_encoder.embed(crops[:1]), vectors[:1], atol=1e-5)
    assert [c.shape for c in dlib_encoder.chips(crops[:1])] == [(150, 150, 3)]


def test_grades_real_faces(dlib_encoder, shared_data):
    import csv

    from facefit import Registry
    from facefit.imaging.faces import FaceEmbedder

    with open(shared_data / "celeba-subset" / "identities.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_id: dict[str, list[str]] = {}
    for row in rows:
        by_id.setdefault(row["celeba_identity"], []).append(row["image"])
    ids = sorted(by_id, key=int)[:3]
    paths = [shared_data / "celeba-subset" / "faces" / n for i in ids for n in by_id[i][:2]]
    detector = Registry.load(allow=["yunet"]).create_face_detector("yunet")
    try:
        grader = FaceEmbedder(detector, dlib_encoder)
        results = grader.embed_files(paths)
    except WeightsNotFoundError as exc:
        pytest.skip(f"YuNet not installed ({exc})")
    assert all(r.ok for r in results)
    v = np.stack([r.vector for r in results])
    sim = v @ v.T
    same = np.mean([sim[0, 1], sim[2, 3], sim[4, 5]])
    different = np.mean([sim[i, j] for i in range(6) for j in range(6) if i // 2 != j // 2])
    assert same > different + 0.1
