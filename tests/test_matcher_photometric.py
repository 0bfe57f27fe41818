"""Photometric augmentation of matcher training (issue 21), on small made-up data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from facefit.errors import InputError
from facefit.matcher.model import load_base
from facefit.matcher.train import TrainSettings, fit, photometric_jitter
from tests.test_matcher import SPLIT, _face_data, write_tiny_sface

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "tiny_sface.onnx"
    write_tiny_sface(path)
    return load_base(path)


def _crops(n: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 216, (n, 16, 16, 3), dtype=np.uint8)


def test_jitter_is_seeded_and_keeps_shape_and_range():
    crops = _crops()
    a = photometric_jitter(crops, np.random.default_rng(1))
    b = photometric_jitter(crops, np.random.default_rng(1))
    c = photometric_jitter(crops, np.random.default_rng(2))
    assert a.dtype == np.uint8 and a.shape == crops.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, crops)


def test_sketch_jitter_keeps_grey_crops_grey_and_changes_brightness():
    grey = np.repeat(_crops()[..., :1], 3, axis=3)
    out = photometric_jitter(grey, np.random.default_rng(0), colour=False, contrast=0.0)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    ratio = out.reshape(len(out), -1).mean(1) / grey.reshape(len(grey), -1).mean(1)
    assert ratio.min() >= 0.74 and ratio.max() <= 1.26 and ratio.std() > 0.01


def test_colour_jitter_casts_and_greys():
    crops = _crops(40)
    plain = dict(brightness=0.0, contrast=0.0)
    # all grey: every channel the same
    out = photometric_jitter(crops, np.random.default_rng(0), grey=1.0, gain=0.0, **plain)
    assert np.abs(out[..., 0].astype(int) - out[..., 2]).max() <= 1
    # gains only: the channel means move against each other, the overall mean hardly
    flat = np.full((40, 8, 8, 3), 128, np.uint8)
    cast = photometric_jitter(flat, np.random.default_rng(0), grey=0.0, **plain)
    means = cast.reshape(40, -1, 3).mean(1)
    assert np.abs(means.mean(1) - 128).max() <= 1.0
    # a gain of 1 ± 0.15 over the mean of three: at most 1.15 / 0.95, at least 0.85 / 1.05
    assert means.std(1).max() > 5
    assert means.max() <= 128 * 1.15 / 0.95 + 1 and means.min() >= 128 * 0.85 / 1.05 - 1


def test_photometric_setting_is_checked():
    with pytest.raises(InputError, match="photometric"):
        TrainSettings(photometric="sepia")


def _settings(**kwargs) -> TrainSettings:
    base = dict(epochs=2, lr=1e-2, batch_size=8, val_pairs=4, split=SPLIT, m=0.2, s=16.0)
    return TrainSettings(**{**base, "threads": 1, **kwargs})


def test_jitter_trains_differently_but_validates_on_plain_crops(tiny_base, tmp_path):
    data = _face_data(16)
    runs = {
        p: fit(tiny_base, data, _settings(photometric=p), cache_dir=tmp_path)
        for p in ("none", "photos", "sketches", "both")
    }
    # epoch 0 (SFace unchanged, before any step) is scored on the plain validation crops
    first = {k: v for k, v in runs["none"].history[0].items() if k != "loss"}
    for run in runs.values():
        assert {k: v for k, v in run.history[0].items() if k != "loss"} == first
    # training differs: jittered samples (sketches), jitter-averaged proxies (photos)
    loss = {p: r.history[1]["loss"] for p, r in runs.items()}
    assert loss["none"] != loss["photos"] and loss["none"] != loss["sketches"]
    assert loss["both"] not in (loss["photos"], loss["sketches"])
    # off is the recipe as it was: the same run twice gives the same losses
    again = fit(tiny_base, data, _settings(photometric="none"), cache_dir=tmp_path)
    assert [r["loss"] for r in again.history] == pytest.approx(
        [r["loss"] for r in runs["none"].history], nan_ok=True, rel=0, abs=0
    )


def test_cli_offers_photometric():
    from facefit.cli import main

    result = CliRunner().invoke(main, ["train-matcher", "--help"])
    assert result.exit_code == 0 and "--photometric" in result.output
    assert "[none|photos|sketches|both]" in result.output.replace(" ", "")


def _analysis_module():
    path = ROOT / "benchmarks" / "matcher_fairness_analysis.py"
    spec = importlib.util.spec_from_file_location("matcher_fairness_analysis", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_analysis_grey_world_and_group_counts():
    analysis = _analysis_module()
    warm = np.zeros((1, 4, 4, 3), np.uint8)
    warm[..., 0], warm[..., 1], warm[..., 2] = 180, 120, 60
    balanced = analysis.grey_world(warm)
    assert np.abs(balanced.astype(int) - 120).max() <= 1
    assert analysis.subset_of("fs2k/photo3_0116") == "photo3"
    ranks = np.array([1, 2, 1, 1, 5])
    hits = analysis.hits_by_groups(
        ranks, ["photo1", "photo1", "photo2", "photo1", "photo3"],
        ["medium", "medium", "light", "light", "light"],
    )  # fmt: skip
    assert hits["all"] == [3, 5] and hits["medium/photo1"] == [1, 2]
    assert hits["light"] == [2, 3] and hits["photo1"] == [2, 3] and hits["photo3"] == [0, 1]
