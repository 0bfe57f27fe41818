"""Score fusion and calibration (facefit.fusion), on hand-made and made-up data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facefit.errors import InputError
from facefit.evaluation.calibration import (
    calibration_report,
    expected_calibration_error,
    reliability_bins,
)
from facefit.fusion import DEFAULT_WEIGHTS, FusionModel, Profile
from facefit.fusion.fit import FitSample, fit_profile
from facefit.fusion.model import probabilities

# The worked example of docs/identification.md ("Fusion weights")
EXAMPLE = {
    "format": "facefit-fusion/1",
    "fitted": {"note": "hand-made for the documentation"},
    "profiles": [
        {
            "encoders": {"sketch": "sketch-matcher-x", "lq": "sface-2021dec@8px"},
            "weights": {"sketch": 10.0, "lq": 2.0},
            "log_lr_offset": -4.0,
        }
    ],
}
ENCODERS = {"sketch": "sketch-matcher-x", "lq": "sface-2021dec@8px"}
SCORES = {  # identities A, B, C
    "sketch": np.array([0.50, 0.30, 0.45]),
    "lq": np.array([0.10, 0.90, 0.50]),
}


@pytest.fixture
def example(tmp_path):
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(EXAMPLE))
    return FusionModel.load(path)


def test_weights_from_file_give_the_documented_ranking(example):
    fused = example.fuse(SCORES, ENCODERS, prior=1.0)
    # raw = 10·sketch + 2·lq: A 5.2, B 4.8, C 5.5 → C, A, B
    np.testing.assert_allclose(fused.raw, [5.2, 4.8, 5.5])
    assert [("A", "B", "C")[j] for j in np.argsort(-fused.raw)] == ["C", "A", "B"]
    # closed set (prior 1): softmax of the raw scores
    expected = np.exp([5.2, 4.8, 5.5]) / np.exp([5.2, 4.8, 5.5]).sum()
    np.testing.assert_allclose(fused.probability, expected)
    assert fused.profile == "sketch@sketch-matcher-x+lq@sface-2021dec@8px"
    # the sketch alone outranks by the sketch: A first; lq alone: B first
    assert int(np.argmax(SCORES["sketch"])) == 0 and int(np.argmax(SCORES["lq"])) == 1


def test_a_larger_profile_is_not_invented_and_extra_sources_are_named(example):
    scores = {**SCORES, "text": np.array([0.9, 0.1, 0.5])}
    encoders = {**ENCODERS, "text": "attribute-probes/sface-2021dec"}
    fused = example.fuse(scores, encoders, prior=1.0)
    np.testing.assert_allclose(fused.raw, [5.2, 4.8, 5.5])  # text left out, and said so
    assert "no fitted weight for text" in fused.notes[0]
    other = example.fuse({"sketch": SCORES["sketch"]}, {"sketch": "sface-2021dec"})
    assert other.probability is None and "no fitted profile" in other.notes[0]


def test_probabilities_are_monotone_and_open_set_says_no_match():
    rng = np.random.default_rng(0)
    log_lr = rng.normal(0, 2, 50)
    for prior in (0.1, 0.5, 1.0):
        p = probabilities(log_lr, prior)
        order = np.argsort(log_lr)
        assert np.all(np.diff(p[order]) >= 0)  # a higher score never gets a lower probability
        assert p.sum() <= 1.0 + 1e-9
        raised = log_lr.copy()
        raised[3] += 1.0
        assert probabilities(raised, prior)[3] > p[3]
    np.testing.assert_allclose(probabilities(log_lr, 1.0).sum(), 1.0)
    # nobody looks like the evidence (every LR far below 1): every probability is small
    assert probabilities(np.full(100, -6.0), 0.5).max() < 0.01
    # one identity far above the rest: it takes most of the probability
    strong = np.full(100, -6.0)
    strong[7] = 12.0
    assert probabilities(strong, 0.5)[7] > 0.99
    assert probabilities(np.array([-np.inf, 1.0]), 1.0)[0] == 0.0
    with pytest.raises(InputError):
        probabilities(log_lr, 0.0)


def _made_up_samples(n_probes=60, n_ids=40, seed=0):
    """Sketch scores that separate matches well, low-quality scores that do a little."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n_probes):
        truth = i % n_ids
        sketch = rng.normal(0.1, 0.1, n_ids)
        lq = rng.normal(0.2, 0.1, n_ids)
        sketch[truth] += 0.35
        lq[truth] += 0.08
        positive = np.zeros(n_ids, bool)
        positive[truth] = True
        samples.append(FitSample({"sketch": sketch, "lq": lq}, positive, f"p{truth}"))
    return samples


def test_fit_is_deterministic_non_negative_and_calibrated_on_made_up_data():
    samples = _made_up_samples()
    encoders = {"sketch": "s", "lq": "q"}
    one = fit_profile(samples, encoders, seed=3)
    two = fit_profile(samples, encoders, seed=3)
    assert one.weights == two.weights and one.log_lr_offset == two.log_lr_offset
    assert one.weights["sketch"] > one.weights["lq"] >= 0
    assert one.fit["cv_top1_ece"] < 0.15  # 60 probes: a noisy estimate; 0.05 here
    # a source that ranks the wrong way is dropped, never weighted negatively
    flipped = [
        FitSample({**s.scores, "lq": -np.asarray(s.scores["lq"])}, s.positive, s.person)
        for s in samples
    ]
    dropped = fit_profile(flipped, encoders)
    assert dropped.weights["lq"] == 0.0 and dropped.fit["dropped"] == ["lq"]


def test_a_model_round_trips_through_its_file(tmp_path, example):
    path = example.save(tmp_path / "copy.json")
    again = FusionModel.load(path)
    assert again.profiles.keys() == example.profiles.keys()
    with pytest.raises(InputError, match="exists"):
        example.save(path)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="not a facefit fusion weights file"):
        FusionModel.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="weights must be finite and >= 0"):
        Profile({"sketch": "s"}, {"sketch": -1.0}, 0.0)


def test_the_shipped_weights_load_and_say_how_they_were_fitted():
    model = FusionModel.load(DEFAULT_WEIGHTS)
    assert model.profiles
    assert "calibration" in json.dumps(model.meta["data"])
    for profile in model.profiles.values():
        assert all(w >= 0 for w in profile.weights.values())
        assert profile.fit["on"] == "fs2k calibration slice"


def test_expected_calibration_error_and_bins():
    confidence = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.1])
    correct = np.array([True, True, True, False, False, False])
    # bin 0.8-0.9: confidence 0.9, accuracy 0.75; bin 0.0-0.1: 0.1 vs 0 → (4·0.15 + 2·0.1)/6
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.8 / 6)
    bins = reliability_bins(confidence, correct)
    assert sum(b["probes"] for b in bins) == 6
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([True, False])) == 0.0
    with pytest.raises(InputError):
        expected_calibration_error([1.5], [True])


def test_person_level_calibration_sums_a_persons_photos():
    probabilities_ = np.array([[0.3, 0.3, 0.4]])
    # columns 0 and 1 are one person: that person (0.6) is the top, and it is right
    report = calibration_report(probabilities_, np.array([1]), np.array([0, 0, 1]))
    assert report.accuracy == 1.0 and report.mean_confidence == pytest.approx(0.6)
    photo = calibration_report(probabilities_, np.array([1]))
    assert photo.accuracy == 0.0 and photo.mean_confidence == pytest.approx(0.4)


@pytest.mark.shared_data
def test_the_calibration_gallery_adds_training_distractors_and_no_dev_photo(shared_data):
    from facefit.datasets import splits
    from facefit.fusion.slice import calibration_manifest

    manifest = calibration_manifest(shared_data, ["sketch"])
    probed = {p.identity for p in manifest.probes}
    gallery = {g.identity for g in manifest.full_gallery()}
    assert probed == set(splits.fs2k_calibration(shared_data))
    assert gallery == probed | set(splits.fs2k_training(shared_data))
    assert not gallery & set(splits.fs2k_split(shared_data).dev)
    small = calibration_manifest(shared_data, ["sketch"], distractors=False)
    assert {g.identity for g in small.full_gallery()} == probed
