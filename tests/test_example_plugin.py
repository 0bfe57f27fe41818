"""The vendor story end to end: the example plugin package is installed, found, listed, used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facefit import Registry
from facefit.plugins import ENV_LOAD_PLUGINS
from facefit.testing import random_faces

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "facefit-toy-encoder"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install`` the example package (no deps, offline) into a private folder."""
    target = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--no-index", "--target", str(target), str(EXAMPLE),
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    if build.returncode != 0:
        pytest.fail(f"installing the example plugin failed:\n{build.stderr}")
    return target


def test_installed_example_is_listed_by_the_cli(installed):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    env.pop(ENV_LOAD_PLUGINS, None)
    out = subprocess.run(
        [sys.executable, "-m", "facefit", "plugins", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    rows = {row["plugin"]: row for row in json.loads(out.stdout)["plugins"]}
    toy = rows["toy-encoder"]
    assert toy["package"] == "facefit-toy-encoder" and toy["version"] == "0.1.0"
    assert toy["provides"] == ["face_encoder:toy"]


def test_installed_example_is_usable_through_the_registry(installed, monkeypatch):
    monkeypatch.syspath_prepend(str(installed))
    registry = Registry.load(allow={"toy-encoder"})
    assert registry.list_face_encoders() == ["toy"]
    encoder = registry.create_face_encoder("toy")
    faces = random_faces(3, encoder.input_size)
    vectors = encoder.embed(faces)
    assert vectors.shape == (3, 64)
    # a brighter copy of the same face is closer than a different face
    brighter = np.clip(faces[0].astype(int) + 20, 0, 255).astype(np.uint8)
    same = encoder.similarity(faces[0], brighter)
    other = encoder.similarity(faces[0], faces[1])
    assert same > other


def test_vendor_conformance_suite_passes_on_the_example():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(EXAMPLE / "src")},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed" in out.stdout


# -- the second example: a retriever a gallery saves, reopens and tunes ----------------------

RETRIEVER_EXAMPLE = EXAMPLE.parent / "facefit-toy-retriever"


@pytest.fixture(scope="module")
def installed_retriever(tmp_path_factory) -> Path:
    """``pip install`` the example retriever package (no deps, offline) into a private folder."""
    target = tmp_path_factory.mktemp("site-retriever")
    build = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--no-index", "--target", str(target),
            str(RETRIEVER_EXAMPLE),
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    if build.returncode != 0:
        pytest.fail(f"installing the example retriever failed:\n{build.stderr}")
    return target


def test_installed_example_retriever_backs_a_gallery_that_is_saved_tuned_and_reopened(
    installed_retriever, monkeypatch, tmp_path
):
    from facefit.gallery import EncoderInfo, GalleryIndex

    monkeypatch.syspath_prepend(str(installed_retriever))
    registry = Registry.load(allow={"toy-retriever"})
    assert registry.list_retrievers() == ["toy-prefilter"]
    assert registry.entry("retriever", "toy-prefilter").plugin.package == "facefit-toy-retriever"
    rng = np.random.default_rng(0)
    faces = rng.normal(size=(300, 32)).astype(np.float32)
    gallery = GalleryIndex.create(
        EncoderInfo("toy", "1", 32), retriever="toy-prefilter", registry=registry, prefix=8
    )
    gallery.add(faces, [f"p{i}" for i in range(300)])
    tuning = gallery.tune(0.95, k=5, sample=50)
    assert tuning.option == "candidates" and tuning.recall >= 0.95
    gallery.save(tmp_path / "g")
    reopened = GalleryIndex.load(tmp_path / "g", registry=registry)
    assert reopened.retriever.params() == {"prefix": 8, "candidates": tuning.value}
    assert reopened.search(faces[7], k=1)[0].identity == "p7"


def test_vendor_conformance_suite_passes_on_the_example_retriever():
    out = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(RETRIEVER_EXAMPLE / "tests"),
        ],
        capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(RETRIEVER_EXAMPLE / "src")},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "10 passed" in out.stdout
