"""Export contracts, shape profiles and the engine cache (no export, no GPU)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from facefit.errors import InputError
from facefit_runtime.cache import CacheKey, EngineCache, default_root, weights_hash
from facefit_runtime.contract import ExportContract, ShapeProfile, contract_for
from facefit_runtime.models import TINY_NUM_TOKENS, tiny_unet
from facefit_runtime.tensorrt import engine_key, profile_shapes


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


@pytest.fixture
def profile():
    return ShapeProfile(
        batch=(1, 2, 8), channels=4, height=32, width=32, num_tokens=8, token_dim=32
    )


# -- contracts and profiles ---------------------------------------------------------------


def test_contract_is_read_from_a_diffusers_unet(unet):
    contract = contract_for(unet, num_tokens=TINY_NUM_TOKENS, batch=(1, 2, 4))
    p = contract.profile
    assert (p.channels, p.height, p.width, p.num_tokens, p.token_dim) == (4, 16, 16, 8, 32)
    assert contract.input_names == ("sample", "timestep", "encoder_hidden_states")
    assert contract.output_names == ("prediction",)
    assert contract.dynamic_axes["sample"] == {0: "batch"}
    assert set(contract.dynamic_axes) == {*contract.input_names, "prediction"}


def test_contract_is_read_from_the_generator_denoiser():
    from facefit.generator import FaceGenerator

    generator = FaceGenerator(
        image_size=32,
        block_out_channels=(16, 32),
        attention_levels=(False, True),
        cross_attention_dim=64,
        norm_num_groups=8,
    )
    p = contract_for(generator.denoiser).profile
    assert (p.output_channels, p.height) == (3, 32)
    assert p.channels == generator.denoiser.in_channels > 3  # noisy image + spatial evidence
    assert (p.num_tokens, p.token_dim) == (generator.num_tokens, 64)


def test_contract_without_token_count_names_what_is_missing(unet):
    with pytest.raises(InputError, match="num_tokens"):
        contract_for(unet)


def test_min_opt_max_shapes_follow_the_batch_range(profile):
    shapes = profile_shapes(ExportContract(profile))
    assert shapes["sample"] == ((1, 4, 32, 32), (2, 4, 32, 32), (8, 4, 32, 32))
    assert shapes["timestep"] == ((1,), (2,), (8,))
    assert shapes["encoder_hidden_states"] == ((1, 8, 32), (2, 8, 32), (8, 8, 32))
    assert profile.accepts(8) and not profile.accepts(9)


@pytest.mark.parametrize("batch", [(0, 1, 2), (2, 1, 4), (1, 4, 2)])
def test_bad_batch_range_is_a_clear_error(profile, batch):
    with pytest.raises(InputError, match="min <= opt <= max"):
        dataclasses.replace(profile, batch=batch)


def test_sample_inputs_are_deterministic_and_shaped(profile):
    contract = ExportContract(profile)
    a = contract.sample_inputs(4, seed=3)
    b = contract.sample_inputs(4, seed=3)
    assert [tuple(t.shape) for t in a] == [(4, 4, 32, 32), (4,), (4, 8, 32)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


# -- cache keys ----------------------------------------------------------------------------


def _key(base_profile, **changes):
    base = {
        "weights": "w" * 64,
        "precision": "fp16",
        "profile": base_profile,
        "toolchain": "tensorrt 10.13.0",
        "device": "NVIDIA H100 80GB HBM3 sm_90",
    }
    return engine_key(**{**base, **changes})


def test_engine_key_changes_with_each_thing_an_engine_depends_on(profile):
    base = _key(profile)
    changed = {
        "weights": _key(profile, weights="v" * 64),
        "precision": _key(profile, precision="fp32"),
        "profile": _key(profile, profile=profile.with_batch(1, 2, 16)),
        "static shapes": _key(profile, profile=dataclasses.replace(profile, height=64)),
        "TensorRT version": _key(profile, toolchain="tensorrt 10.14.0"),
        "TensorRT flavour": _key(profile, toolchain="tensorrt-rtx 1.2.0"),
        "GPU name": _key(profile, device="NVIDIA GeForce RTX 4090 sm_89"),
        "compute capability": _key(profile, device="NVIDIA H100 80GB HBM3 sm_100"),
        "builder level": _key(profile, optimization_level=5),
    }
    digests = {what: key.digest for what, key in changed.items()}
    assert base.digest not in digests.values()
    assert len(set(digests.values())) == len(digests), digests
    assert _key(profile).digest == base.digest  # and is stable


def test_weights_hash_tracks_values_dtype_and_config(unet):
    h = weights_hash(unet)
    assert h == weights_hash(tiny_unet()), "same seed, same weights, same hash"
    assert h != weights_hash(tiny_unet(seed=1))
    other = tiny_unet()
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    assert h != weights_hash(other)
    assert h != weights_hash(tiny_unet().half())


# -- the cache on disk ---------------------------------------------------------------------


def test_store_lookup_and_list(tmp_path, profile):
    cache = EngineCache(tmp_path)
    key = _key(profile)
    assert cache.lookup(key) is None
    entry = cache.store(key, {"engine.plan": b"plan bytes"})
    assert entry.file("engine.plan").read_bytes() == b"plan bytes"
    assert cache.lookup(key).path == entry.path
    assert entry.path.parent == tmp_path / "tensorrt"
    recorded = json.loads((entry.path / "key.json").read_text())
    assert recorded["device"] == "NVIDIA H100 80GB HBM3 sm_90" and recorded["precision"] == "fp16"
    assert [e.path for e in cache.entries()] == [entry.path]
    # another GPU: a different entry, so the engine is rebuilt rather than reused
    assert cache.lookup(_key(profile, device="NVIDIA A100-SXM4-40GB sm_80")) is None


def test_failed_write_leaves_nothing_behind(tmp_path, profile):
    cache = EngineCache(tmp_path)
    key = _key(profile)
    with pytest.raises(RuntimeError), cache.writing(key) as folder:
        (folder / "engine.plan").write_bytes(b"half an engine")
        raise RuntimeError("build failed")
    assert cache.lookup(key) is None
    assert not [p for p in (tmp_path / "tensorrt").iterdir()]


def test_entry_without_key_file_is_not_complete_and_is_replaced(tmp_path, profile):
    cache = EngineCache(tmp_path)
    key = _key(profile)
    cache.path_for(key).mkdir(parents=True)  # e.g. a copy interrupted by a crash
    (cache.path_for(key) / "engine.plan").write_bytes(b"partial")
    assert cache.lookup(key) is None and cache.entries() == []
    entry = cache.store(key, {"engine.plan": b"complete"})
    assert entry.file("engine.plan").read_bytes() == b"complete"


def test_concurrent_store_of_the_same_key_keeps_one_entry(tmp_path, profile):
    cache = EngineCache(tmp_path)
    key = _key(profile)
    with cache.writing(key) as first:
        (first / "engine.plan").write_bytes(b"one")
        cache.store(key, {"engine.plan": b"two"})  # another process finished first
    assert cache.lookup(key).file("engine.plan").read_bytes() == b"two"
    assert len(cache.entries()) == 1


def test_entries_of_another_schema_are_ignored(tmp_path, profile):
    cache = EngineCache(tmp_path)
    entry = cache.store(_key(profile), {"engine.plan": b"x"})
    record = json.loads((entry.path / "key.json").read_text())
    (entry.path / "key.json").write_text(json.dumps({**record, "schema": 0}))
    assert cache.entries() == []


def test_clear_and_timing_cache_path(tmp_path, profile):
    cache = EngineCache(tmp_path)
    cache.store(_key(profile), {"engine.plan": b"x"})
    cache.store(CacheKey("onnx", "w", "fp32", profile.key, "torch"), {"model.onnx": b"y"})
    assert {e.kind for e in cache.entries()} == {"onnx", "tensorrt"}
    assert cache.clear("tensorrt") == 1 and [e.kind for e in cache.entries()] == ["onnx"]
    path = cache.timing_cache_path("tensorrt 10.13.0", "NVIDIA H100 80GB HBM3 sm_90")
    assert path.parent == tmp_path / "timing" and " " not in path.name


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEFIT_ENGINE_CACHE", str(tmp_path / "engines"))
    assert default_root() == tmp_path / "engines"
    monkeypatch.delenv("FACEFIT_ENGINE_CACHE")
    monkeypatch.setenv("FACEFIT_HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / "engines"
