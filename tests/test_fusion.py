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


# -- gallery size ------------------------------------------------------------------------------

SIZED = {
    "encoders": {"sketch": "s", "lq": "q"},
    "weights": {"sketch": 30.0, "lq": 10.0},
    "log_lr_offset": -10.0,
    "gallery_size": {
        "reference": 800,
        "range": [100, 800],
        "weights": {"sketch": 4.0, "lq": -8.0},
        "log_lr_offset": 0.5,
    },
}


def test_old_weight_files_read_as_before_and_a_size_term_is_a_new_format(tmp_path, example):
    # a /1 file (no size term) gives the same profile, and is written back as /1
    profile = example.profiles["sketch@sketch-matcher-x+lq@sface-2021dec@8px"]
    assert not profile.sized and profile.at_size(10_000) == (profile.weights, -4.0)
    assert example.to_dict()["format"] == "facefit-fusion/1"
    # a profile with a size term is written as /2 and read back equal
    path = tmp_path / "sized.json"
    path.write_text(json.dumps({"format": "facefit-fusion/2", "profiles": [SIZED]}))
    model = FusionModel.load(path)
    sized = next(iter(model.profiles.values()))
    assert sized.sized and sized.size_weights == {"sketch": 4.0, "lq": -8.0}
    again = FusionModel.load(model.save(tmp_path / "again.json"))
    assert again.to_dict() == model.to_dict() and model.to_dict()["format"] == "facefit-fusion/2"
    bad = {**SIZED, "gallery_size": {**SIZED["gallery_size"], "weights": {"text": 1.0}}}
    path.write_text(json.dumps({"format": "facefit-fusion/2", "profiles": [bad]}))
    with pytest.raises(InputError, match="gallery-size term"):
        FusionModel.load(path)


def test_a_size_term_changes_weights_with_log_gallery_size_within_its_range():
    profile = Profile.from_dict(SIZED, "test")
    assert profile.at_size(800) == ({"sketch": 30.0, "lq": 10.0}, -10.0)
    weights, offset = profile.at_size(400)  # ℓ = −log 2
    assert weights["sketch"] == pytest.approx(30.0 - 4.0 * np.log(2))
    assert weights["lq"] == pytest.approx(10.0 + 8.0 * np.log(2))
    assert offset == pytest.approx(-10.0 - 0.5 * np.log(2))
    # beyond the fitted sizes it reaches one doubling, then holds
    assert profile.at_size(1600) == profile.at_size(10**6)
    assert profile.at_size(50) == profile.at_size(2)
    assert profile.at_size(1600)[0]["lq"] == pytest.approx(10.0 - 8.0 * np.log(2))
    # the weights at N are the ones its probabilities use (N = identities scored)
    rng = np.random.default_rng(1)
    scores = {"sketch": rng.normal(0.2, 0.1, 400), "lq": rng.normal(0.3, 0.1, 400)}
    scores["lq"][7] = -np.inf  # not scored: not counted
    fused = FusionModel([profile]).fuse(scores, {"sketch": "s", "lq": "q"}, prior=0.5)
    w, c = profile.at_size(399)
    raw = w["sketch"] * scores["sketch"] + w["lq"] * scores["lq"]
    np.testing.assert_allclose(fused.raw, raw)
    np.testing.assert_allclose(fused.probability, probabilities(raw + c, 0.5))


def test_a_size_aware_calibration_is_monotone_in_score_at_every_gallery_size():
    # slopes steep enough that w + v·ℓ would go negative at the edges: weights are held at 0
    steep = {**SIZED, "gallery_size": {**SIZED["gallery_size"], "weights": {"lq": 9.0}}}
    profile = Profile.from_dict(steep, "test")
    assert profile.at_size(50)[0]["lq"] == 0.0
    rng = np.random.default_rng(2)
    for n in (5, 50, 100, 250, 800, 3000):
        scores = {"sketch": rng.normal(0.2, 0.1, n), "lq": rng.normal(0.3, 0.1, n)}
        model = FusionModel([profile])
        for prior in (0.5, 1.0):
            base = model.fuse(scores, {"sketch": "s", "lq": "q"}, prior=prior)
            for source in ("sketch", "lq"):
                raised = {k: v.copy() for k, v in scores.items()}
                raised[source][0] += 0.2
                after = model.fuse(raised, {"sketch": "s", "lq": "q"}, prior=prior)
                assert after.probability[0] >= base.probability[0] - 1e-12
                assert after.raw[0] >= base.raw[0]
            order = np.argsort(base.raw)
            assert np.all(np.diff(base.probability[order]) >= -1e-12)


def _heavy_tailed_samples(n_probes, size, seed):
    """Non-matches with heavy tails (Student t, 3 degrees of freedom): a fixed linear log LR
    fitted in one gallery size is miscalibrated in others (under-confident in small ones,
    over-confident in large ones), as a few distractors reach the match's score."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n_probes):
        sketch = 0.05 * rng.standard_t(3, size)
        sketch[0] = rng.normal(0.3, 0.05)
        positive = np.zeros(size, bool)
        positive[0] = True
        samples.append(FitSample({"sketch": sketch}, positive, f"p{i}"))
    return samples


def test_a_gallery_size_term_fitted_on_several_sizes_holds_across_sizes_on_made_up_data():
    from facefit.fusion.fit import gallery_size_samples

    sizes = (25, 100, 400)
    train = _heavy_tailed_samples(150, 400, seed=0)
    core = np.zeros(400, bool)
    core[:25] = True  # the match is among the core
    several = gallery_size_samples(train, core, sizes, seed=0)
    assert [int(np.isfinite(s.scores["sketch"]).sum()) for s in several[:3]] == list(sizes)
    fixed = fit_profile(train, {"sketch": "s"}, folds=1)  # at the largest size only
    sized = fit_profile(several, {"sketch": "s"}, folds=1, size_model="temperature")
    assert sized.fit["size_model"] == "temperature" and sized.fit["gallery_sizes"] == list(sizes)
    # heavier competition in larger galleries: the sketch weighs less as N grows
    assert sized.size_weights["sketch"] < 0 < sized.weights["sketch"]
    assert sized.at_size(25)[0]["sketch"] > sized.at_size(400)[0]["sketch"]

    def held_out(profile, size):  # fresh made-up probes: NLL, mean top-1 probability − accuracy
        nll, gap = [], []
        for sample in _heavy_tailed_samples(300, size, seed=size + 7):
            p = FusionModel([profile]).fuse(sample.scores, {"sketch": "s"}, prior=1.0).probability
            nll.append(-np.log(p[0]))
            gap.append(p.max() - float(np.argmax(p) == 0))
        return float(np.mean(nll)), abs(float(np.mean(gap)))

    fixed_rows = [held_out(fixed, n) for n in sizes]
    sized_rows = [held_out(sized, n) for n in sizes]
    assert np.mean([r[0] for r in sized_rows]) < np.mean([r[0] for r in fixed_rows])
    # at 25 and 100 identities the size-aware probabilities match the accuracy (within
    # noise); the fixed fit (made at 400) is far under-confident at 25
    assert sized_rows[0][1] < 0.08 and sized_rows[1][1] < 0.08  # 300 probes: noise ~0.03
    assert fixed_rows[0][1] > 0.25


def test_gallery_size_samples_keep_the_core_and_draw_distractors_deterministically():
    from facefit.fusion.fit import gallery_size_columns, gallery_size_samples

    core = np.array([True] * 3 + [False] * 7)
    one = gallery_size_columns(core, (3, 5, 10, 99), 4, seed=5)
    two = gallery_size_columns(core, (3, 5, 10, 99), 4, seed=5)
    assert all(np.array_equal(a, b) for r, q in zip(one, two, strict=True) for a, b in zip(r, q))
    for row in one:
        assert [len(c) for c in row] == [3, 5, 10, 10]
        for columns in row:
            assert set(range(3)) <= set(columns.tolist()) and len(set(columns.tolist())) == len(
                columns
            )
    assert len({tuple(row[1]) for row in one}) > 1  # each sample its own draw
    with pytest.raises(InputError, match="below"):
        gallery_size_columns(core, (2,), 1)
    sample = FitSample({"sketch": np.arange(10.0)}, np.arange(10) == 1, "p")
    made = gallery_size_samples([sample], core, (5,), seed=5)[0]
    np.testing.assert_array_equal(made.scores["sketch"], one[0][1].astype(float))
    assert made.positive.sum() == 1


def test_a_size_model_needs_several_sizes():
    with pytest.raises(InputError, match="at least two sizes"):
        fit_profile(_made_up_samples(), {"sketch": "s", "lq": "q"}, size_model="temperature")
    with pytest.raises(InputError, match="size model must be"):
        fit_profile(_made_up_samples(), {"sketch": "s", "lq": "q"}, size_model="cubic")


# -- facefit fusion fit ------------------------------------------------------------------------


def test_fusion_fit_flags_reach_the_fit(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import facefit.fusion.slice as slice_
    from facefit.cli import main

    calls = []

    def fake(data, **kwargs):
        calls.append(kwargs)
        return FusionModel([Profile({"sketch": "s"}, {"sketch": 1.0}, 0.0)], {"fake": True})

    monkeypatch.setattr(slice_, "fit_calibration_slice", fake)
    data = tmp_path / "data"
    data.mkdir()

    def run(*args):
        out = tmp_path / f"w{len(calls)}.json"
        return CliRunner().invoke(main, ["fusion", "fit", str(data), "--out", str(out), *args])

    result = run()
    assert result.exit_code == 0, result.output
    assert calls[-1]["distractors"] is True
    assert calls[-1]["size_model"] == slice_.DEFAULT_SIZE_MODEL
    assert calls[-1]["gallery_sizes"] == slice_.DEFAULT_GALLERY_SIZES
    result = run("--no-distractors")
    assert result.exit_code == 0, result.output
    assert calls[-1]["distractors"] is False and calls[-1]["size_model"] == "fixed"
    result = run("--size-model", "per-source", "--gallery-sizes", "100,300")
    assert result.exit_code == 0, result.output
    assert calls[-1]["size_model"] == "per-source" and calls[-1]["gallery_sizes"] == (100, 300)
    result = run("--gallery-sizes", "100")
    assert result.exit_code != 0 and "at least two sizes" in result.output


def test_no_distractors_with_a_size_model_is_refused_before_reading_data(tmp_path):
    from facefit.fusion.slice import fit_calibration_slice

    with pytest.raises(InputError, match="needs them"):
        fit_calibration_slice(tmp_path, distractors=False, size_model="temperature", registry=1)
    with pytest.raises(InputError, match="generation profiles"):
        fit_calibration_slice(tmp_path, generation=True, size_model="per-source", registry=1)


def test_fusion_show_counts_each_probe_once(tmp_path):
    """A size-aware fit sees every probe once per gallery size; `fusion show` says so."""
    from click.testing import CliRunner

    from facefit.cli import main

    sized = Profile(
        {"sketch": "s"}, {"sketch": 1.0}, 0.0, fit={"probes": 400, "gallery_sizes": [1, 2, 3, 4]}
    )
    plain = Profile({"lq": "q"}, {"lq": 1.0}, 0.0, fit={"probes": 90})
    path = tmp_path / "w.json"
    FusionModel([sized, plain], {}).save(path)
    result = CliRunner().invoke(main, ["fusion", "show", str(path)])
    assert result.exit_code == 0, result.output
    assert "100 probes × 4 gallery sizes" in result.output
    assert "90 probes" in result.output and "400 probes" not in result.output
