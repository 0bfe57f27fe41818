"""The shipped sketch matcher: fp16 fine-tuned layers in the package, built on SFace at load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from facefit.errors import InputError, WeightsNotFoundError
from facefit.files import sha256_file
from facefit.matcher import shipped
from facefit.matcher.files import load_matcher_onnx, read_config, resolve_matcher_dir
from facefit.matcher.shipped import install_shipped, load_tail, pack_shipped
from facefit.testing import random_faces
from facefit_plugins.face_encoders.matcher import SketchMatcherEncoder
from tests.test_matcher import _ort, tiny_base_path, tiny_matcher  # noqa: F401 (fixtures)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture
def package(tiny_matcher, tiny_base_path, tmp_path):  # noqa: F811
    return pack_shipped(tiny_matcher, tmp_path / "package", base_path=tiny_base_path)


def test_package_holds_only_the_trained_layers_as_fp16(package, tiny_matcher):  # noqa: F811
    from facefit.matcher.files import load_weights

    trained = read_config(tiny_matcher)["trained"]
    tail = load_file(str(package / "tail.safetensors"))
    assert sorted(tail) == sorted(trained)
    full = load_weights(tiny_matcher)
    assert len(full) > len(tail)  # the frozen trunk is not carried
    for name, value in tail.items():
        assert value.dtype == np.float16
        # round trip: exactly the float16 rounding of the trained weight
        np.testing.assert_array_equal(value, full[name].astype(np.float16))
        err = np.abs(value.astype(np.float32) - full[name])
        assert (err <= np.abs(full[name]) * 2**-11 + 2**-24).all()
    assert json.loads((package / "config.json").read_text())["shipped"]["dtype"] == "float16"


def test_install_builds_the_matcher_once_and_matches_the_trained_one(
    package,
    tiny_matcher,  # noqa: F811
    tiny_base_path,  # noqa: F811
    tmp_path,
):
    dest = tmp_path / "cache" / "sketch-matcher"
    path, action = install_shipped(dest, package=package, base_path=tiny_base_path)
    assert (path, action) == (dest, "installed")
    assert read_config(dest)["parity"]["min_cosine"] > 0.99999  # its ONNX and torch agree
    faces = random_faces(6, 112, seed=4)
    built = _ort(load_matcher_onnx(dest), faces)
    trained = _ort(load_matcher_onnx(tiny_matcher), faces)
    assert _cosines(built, trained).min() > 0.9999  # fp16 rounding only
    again = install_shipped(dest, package=package, base_path=tiny_base_path)
    assert again == (dest, "already installed")
    # another package version's layers replace the cached build
    config = json.loads((package / "config.json").read_text())
    tail = load_file(str(package / "tail.safetensors"))
    name = sorted(tail)[0]
    tail[name] = (tail[name] * 1.5).astype(np.float16)
    save_file(tail, str(package / "tail.safetensors"))
    config["shipped"]["tail_sha256"] = sha256_file(package / "tail.safetensors")
    (package / "config.json").write_text(json.dumps(config))
    assert install_shipped(dest, package=package, base_path=tiny_base_path)[1] == "replaced"


def test_damaged_or_mismatched_files_are_refused(
    package,
    tiny_matcher,  # noqa: F811
    tiny_base_path,  # noqa: F811
    tmp_path,
):
    # a package trained from another SFace refuses this one
    other = pack_shipped(tiny_matcher, tmp_path / "other", base_path=tiny_base_path)
    config = json.loads((other / "config.json").read_text())
    config["base"] = {"sha256": "0" * 64}
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="install the pinned SFace"):
        install_shipped(tmp_path / "m", package=other, base_path=tiny_base_path)
    # layers other than the config lists
    config = json.loads((package / "config.json").read_text())
    config["shipped"]["layers"] = config["shipped"]["layers"][1:]
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="its config lists"):
        load_tail(other)
    # a damaged file
    path = package / "tail.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged"):
        load_tail(package)
    with pytest.raises(InputError, match="damaged"):
        install_shipped(tmp_path / "m", package=package, base_path=tiny_base_path)
    assert not (tmp_path / "m").exists()
    with pytest.raises(WeightsNotFoundError, match="no shipped sketch matcher"):
        load_tail(tmp_path / "empty")


def test_encoder_without_a_path_uses_the_shipped_matcher(
    package,
    tiny_base_path,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    monkeypatch.setattr(shipped, "PACKAGE_DIR", package)
    monkeypatch.setenv("FACEFIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACEFIT_SFACE_PATH", str(tiny_base_path))
    monkeypatch.delenv("FACEFIT_SKETCH_MATCHER_PATH", raising=False)
    encoder = SketchMatcherEncoder()  # no weights: built into the cache on first use
    cached = tmp_path / "home" / "models" / "sketch-matcher"
    assert encoder.directory == cached and (cached / "model.onnx").is_file()
    faces = random_faces(3, 112, seed=1)
    np.testing.assert_allclose(
        encoder.embed_aligned(faces), _ort(load_matcher_onnx(cached), faces), atol=1e-5
    )
    # a matcher a user trained into the cache is kept, never overwritten
    config = json.loads((cached / "config.json").read_text())
    del config["shipped"]
    (cached / "config.json").write_text(json.dumps(config))
    assert resolve_matcher_dir() == cached
    assert "shipped" not in json.loads((cached / "config.json").read_text())


def test_the_package_ships_a_matcher_that_loads_without_a_path(tmp_path, monkeypatch):
    from facefit.weights import find

    found = find("sface")
    if found is None:
        pytest.skip("SFace is not installed (facefit models install sface)")
    config = shipped.shipped_config()
    tail = load_tail()
    assert sorted(tail) == sorted(config["trained"])
    size = (shipped.PACKAGE_DIR / "tail.safetensors").stat().st_size
    assert size < 16e6, f"the shipped layers take {size / 1e6:.1f} MB"
    monkeypatch.setenv("FACEFIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACEFIT_SFACE_PATH", str(found[0]))
    monkeypatch.delenv("FACEFIT_SKETCH_MATCHER_PATH", raising=False)
    embeddings = SketchMatcherEncoder().embed_aligned(random_faces(2, 112, seed=0))
    assert embeddings.shape == (2, 128) and np.isfinite(embeddings).all()


@pytest.mark.usefixtures("shared_data")
def test_shipped_matcher_keeps_photo_to_photo_matching(shared_data, tmp_path, monkeypatch):
    """CelebA development identities, first photo found by the second: not worse than SFace."""
    from facefit.datasets.splits import CELEBA_DIR, celeba_split, load_celeba_rows
    from facefit.imaging.faces import FaceEmbedder
    from facefit.matcher.data import Pair, align_pairs
    from facefit.registry import Registry
    from facefit.weights import find

    found = find("sface")
    if found is None:
        pytest.skip("SFace is not installed (facefit models install sface)")
    identity_of = {r["image"]: r["celeba_identity"] for r in load_celeba_rows(shared_data)}
    images: dict[str, list[str]] = {}
    for name in sorted(celeba_split(shared_data).dev):
        images.setdefault(identity_of[name], []).append(name)
    folder = shared_data / CELEBA_DIR / "faces"
    pairs = [
        Pair(f"celeba/{i}", f"celeba/{i}", folder / names[0], folder / names[1], "celeba")
        for i, names in sorted(images.items())
        if len(names) >= 2
    ]
    registry = Registry.load()
    embedder = FaceEmbedder.from_registry(registry, detector="yunet")
    data = align_pairs(pairs, embedder, sketch_fallback=False)
    assert len(data) >= 30
    monkeypatch.setenv("FACEFIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACEFIT_SFACE_PATH", str(found[0]))
    monkeypatch.delenv("FACEFIT_SKETCH_MATCHER_PATH", raising=False)
    rank1 = {}
    for name, encoder in {
        "sface": registry.create("face_encoder", "sface"),
        "matcher": SketchMatcherEncoder(),
    }.items():
        gallery = encoder.embed_aligned(data.photos)
        probes = encoder.embed_aligned(data.sketches)  # the second photos
        gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        rank1[name] = float(((probes @ gallery.T).argmax(1) == np.arange(len(data))).mean())
    # at most one identity in this small check may be lost
    assert rank1["matcher"] >= rank1["sface"] - 1 / len(data) - 1e-9, rank1
