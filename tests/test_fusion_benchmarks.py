"""The fusion benchmark scripts' helpers (benchmarks/fusion_*.py), on made-up data."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_a_second_sketch_is_another_photo_of_the_person_in_another_style():
    two = _script("fusion_two_sketches")
    annotations = {
        "a1": {"style": 0},
        "a2": {"style": 0},
        "a3": {"style": 1},
        "b1": {"style": 2},
    }
    person = {"a1": "A", "a2": "A", "a3": "A", "b1": "B"}.get
    second = two.second_sketches(annotations, ["a1", "a2", "a3", "b1"], person)
    # a1 and a2 prefer a3 (another style); a3 takes the first other by id; b1 has none
    assert second == {"a1": "a3", "a2": "a3", "a3": "a1"}
    assert two.rank1({"x": 0.2, "y": 0.5, "z": 0.9}, ["x", "y"]) == "y"
    fused, alone = [True, True, False, True], [True, False, False, False]
    assert two.compare(fused, alone) == {"only_first": 2, "only_second": 0, "mcnemar_p": 0.5}


def _meta():
    """Identities 0 and 1 are one person; 2 another; 3 a distractor outside the small gallery."""
    return {
        "identities": np.array(["p0", "p1", "q", "d"]),
        "persons": np.array(["P", "P", "Q", "D"]),
        "enrolled": np.array([True, True, True, False]),
    }


def test_calibration_gallery_evaluation_sums_a_persons_photos_and_skips_unscored_probes():
    cal = _script("fusion_calibration_gallery")
    from facefit.fusion import Profile

    meta = _meta()
    data = {
        "sketch": np.array([[0.35, 0.35, 0.4, 0.9], [0.1, 0.2, 0.9, 0.0]]),
        "text": np.array([[0.5, 0.5, 0.5, 0.5], [np.nan] * 4]),
        "truth": np.array([1, 2]),
        "encoders": np.array(json.dumps({"sketch": "s", "text": "t"})),
    }
    assert cal.usable(data).tolist() == [True, False]
    profile = Profile({"sketch": "s"}, {"sketch": 10.0}, 0.0)
    small = cal.evaluate(meta, data, np.array([0]), profile, np.array([0, 1, 2]))
    expected = np.exp([3.5, 3.5, 4.0]) / np.exp([3.5, 3.5, 4.0]).sum()
    # person P (two photos) sums to more than Q: top-1 right, confidence the sum
    assert small["rank1"] == 1.0
    assert small["mean_confidence"] == pytest.approx(expected[:2].sum())
    assert small["nll"] == pytest.approx(-np.log(expected[:2].sum()))
    large = cal.evaluate(meta, data, np.array([0]), profile, np.arange(4))
    assert large["rank1"] == 0.0  # the distractor outscores the person in the large gallery


def test_sketch_pairs_count_once_and_persons_once():
    two = _script("fusion_two_sketches")
    rows = [
        {"probe": "a2", "other": "a1", "person": "A", "fused": True, "alone": False},
        {"probe": "a1", "other": "a2", "person": "A", "fused": True, "alone": True},
        {"probe": "a3", "other": "a1", "person": "A", "fused": True, "alone": False},
        {"probe": "b1", "person": "B", "fused": False, "alone": False},
        {"probe": "c1", "other": "c2", "person": "C", "fused": False, "alone": True},
    ]
    # a1+a2 is one pair of drawings whichever is first; b1 has no second sketch
    assert [r["probe"] for r in two.unique_pairs(rows)] == ["a1", "a3", "c1"]
    # person A: fused 1.0 vs alone 1/3 (better); B: tie; C: worse → 1 better, 1 worse
    test = two.person_sign_test(rows, "fused", "alone")
    assert test == {"persons": 3, "better": 1, "worse": 1, "sign_test_p": 1.0}


def test_gallery_size_outcome_uses_the_profile_at_the_gallerys_size():
    size = _script("fusion_gallery_size")
    from facefit.fusion import Profile

    meta = _meta()
    data = {
        "sketch": np.array([[0.35, 0.35, 0.4, 0.9]]),
        "truth": np.array([1]),
        "encoders": np.array(json.dumps({"sketch": "s"})),
    }
    profile = Profile(
        {"sketch": "s"},
        {"sketch": 10.0},
        0.0,
        size_reference=4.0,
        size_weights={"sketch": 10.0},
        size_range=(3.0, 4.0),
    )
    nll, confidence, right = size.outcome(meta, data, 0, profile, np.array([0, 1, 2]))
    w = 10.0 + 10.0 * np.log(3 / 4)  # the weight at 3 identities
    expected = np.exp(w * np.array([0.35, 0.35, 0.4]))
    expected /= expected.sum()
    assert right and confidence == pytest.approx(expected[:2].sum())
    assert nll == pytest.approx(-np.log(expected[:2].sum()))
    nll, confidence, right = size.outcome(meta, data, 0, profile, np.arange(4))
    assert not right  # the distractor outscores the person in the larger gallery
