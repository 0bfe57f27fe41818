"""Accuracy by group: rank-1 gap with a bootstrap interval, FMR/FNMR per group, empty groups.

Every expected value here is worked out by hand in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest

from facefit.errors import InputError
from facefit.evaluation.groups import (
    error_rates_at_fmr,
    group_members,
    group_report,
    rank1_gap,
)
from facefit.evaluation.metrics import far_threshold, group_breakdown, identification_metrics

# 4 probes, 3 gallery identities; probe i's true identity is TRUTH[i]
SCORES = np.array(
    [
        [0.9, 0.8, 0.1],  # female, truth 0: genuine 0.9 (rank 1); impostors 0.8, 0.1
        [0.7, 0.6, 0.2],  # female, truth 1: genuine 0.6 (rank 2); impostors 0.7, 0.2
        [0.3, 0.4, 0.5],  # male,   truth 2: genuine 0.5 (rank 1); impostors 0.3, 0.4
        [0.35, 0.05, 0.0],  # male, truth 0: genuine 0.35 (rank 1); impostors 0.05, 0.0
    ]
)
TRUTH = np.array([0, 1, 2, 0])
GROUPS = [
    {"gender": "female", "skin_tone": "light"},
    {"gender": "female", "skin_tone": "light"},
    {"gender": "male", "skin_tone": "medium"},
    {"gender": "male", "skin_tone": "medium"},
]
RANKS = np.array([1, 2, 1, 1])


def test_threshold_at_the_overall_fmr():
    # 8 impostor scores, FMR 0.25: 2 may pass; sorted 0.8 0.7 | 0.4 …: accept > 0.4
    impostor = np.array([0.8, 0.1, 0.7, 0.2, 0.3, 0.4, 0.05, 0.0])
    assert far_threshold(impostor, 0.25) == 0.4
    assert far_threshold(impostor, 0.1) is None  # 8 scores cannot resolve 1 in 10


def test_fmr_and_fnmr_per_group_at_the_overall_threshold():
    out = group_report(SCORES, TRUTH, RANKS, GROUPS, fmr=0.25)
    rates = out["gender"]["error_rates"]
    assert rates["threshold"] == 0.4 and rates["fmr_target"] == 0.25
    # female impostors 0.8 0.1 0.7 0.2 → 2 of 4 above 0.4; genuine 0.9 0.6 both above
    assert rates["by_value"]["female"] == {
        "probes": 2,
        "impostor_comparisons": 4,
        "fmr": 0.5,
        "fnmr": 0.0,
    }
    # male impostors 0.3 0.4 0.05 0 → none above 0.4; genuine 0.5 above, 0.35 not
    assert rates["by_value"]["male"] == {
        "probes": 2,
        "impostor_comparisons": 4,
        "fmr": 0.0,
        "fnmr": 0.5,
    }


def test_rank1_gap_and_its_bootstrap_interval():
    gap = group_report(SCORES, TRUTH, RANKS, GROUPS, fmr=0.25, rounds=4000)["gender"]["rank1_gap"]
    # female 1/2, male 2/2: gap 0.5, male − female
    assert (gap["best"], gap["worst"], gap["gap"]) == ("male", "female", 0.5)
    # resampled, male stays 2/2; female's 2 draws give 0, 1 or 2 hits (p ¼, ½, ¼), so
    # the gap is 1, 0.5 or 0 with P(0) = ¼ > 2.5% and P(1) = ¼ > 2.5%: interval [0, 1]
    assert gap["ci"] == [0.0, 1.0] and gap["no_probes"] == []


def test_rank1_gap_interval_on_unequal_groups():
    # A: 3 hits of 4, B: 1 of 2; gap 0.25. Exact bootstrap distribution of the gap
    # (Binomial(4, ¾)/4 − Binomial(2, ½)/2): P(≤ −0.75) = 0.0127, P(≤ −0.5) = 0.0674,
    # P(≤ 0.75) = 0.9209, so the 2.5% and 97.5% points are −0.5 and 1.0.
    ranks = np.array([1, 1, 1, 2, 1, 3])
    members = {"a": np.array([0, 1, 2, 3]), "b": np.array([4, 5])}
    gap = rank1_gap(ranks, members, rounds=20000, seed=3)
    assert gap["gap"] == pytest.approx(0.25)
    assert gap["ci"] == [-0.5, 1.0]


def test_a_value_without_probes_is_reported_as_such_never_zero():
    out = group_report(SCORES, TRUTH, RANKS, GROUPS, fmr=0.25)["skin_tone"]
    assert out["rank1_gap"]["no_probes"] == ["dark"]
    assert out["rank1_gap"]["best"] == "medium" and out["rank1_gap"]["gap"] == 0.5
    dark = out["error_rates"]["by_value"]["dark"]
    assert dark == {
        "probes": 0,
        "impostor_comparisons": 0,
        "fmr": None,
        "fnmr": None,
        "status": "no probes",
    }
    breakdown = group_breakdown(RANKS, GROUPS)
    assert breakdown["skin_tone"]["dark"] == {
        "probes": 0,
        "rank1": None,
        "rank1_ci95": None,
        "status": "no probes",
    }


def test_one_value_with_probes_has_no_gap():
    members = group_members([{"gender": "male"}] * 3, "gender", ("female", "male"))
    gap = rank1_gap(np.array([1, 2, 1]), members)
    assert gap["gap"] is None and "need 2" in gap["reason"]
    assert gap["no_probes"] == ["female"]


def test_failed_probe_is_a_false_non_match_without_impostor_comparisons():
    genuine = np.array([0.9, -np.inf])
    rows = [np.array([0.1, 0.5]), np.zeros(0)]
    out = error_rates_at_fmr(genuine, rows, {"x": np.array([0, 1])}, threshold=0.4)
    assert out["x"] == {"probes": 2, "impostor_comparisons": 2, "fmr": 0.5, "fnmr": 0.5}


def test_unresolvable_threshold_gives_no_rates():
    # the default FMR 1e-2 needs 100 impostor scores; 8 cannot resolve it
    m = identification_metrics(SCORES, TRUTH, groups=GROUPS)
    female = m.group_fairness["gender"]["error_rates"]["by_value"]["female"]
    assert female["fmr"] is None and female["fnmr"] is None
    assert m.to_json()["group_fairness"]["gender"]["rank1_gap"]["gap"] == 0.5


def test_bad_bootstrap_settings_are_refused():
    members = {"a": np.array([0]), "b": np.array([1])}
    with pytest.raises(InputError, match="rounds"):
        rank1_gap(np.array([1, 2]), members, rounds=0)
    with pytest.raises(InputError, match="group labels"):
        group_report(SCORES, TRUTH, RANKS, GROUPS[:2])


def test_eval_reports_the_gap_and_rates_per_group(tmp_path):
    from facefit.evaluation import evaluate, read_fs2k
    from facefit.evaluation.report import to_markdown
    from facefit.registry import Registry
    from tests.plugins import eval_codes
    from tests.test_eval_harness import make_fs2k

    registry = Registry.load(entry_points=False, plugins=[("codes", eval_codes)])
    bench = read_fs2k(make_fs2k(tmp_path / "fs2k"), probe_sets=["sketch"])
    run = evaluate(
        [bench], ["direct"], registry=registry, detector="code", encoder="code", progress=False
    )
    m = run.results[0].metrics
    # test_eval_harness: 12 probes (ids 1-6 male, 7-12 female), 132 impostor scores:
    # one 0.866 (a female probe), one 0.5, the rest 0. FMR 1e-2 lets 1 pass: accept > 0.5.
    # The two non-matches (ranks 2 and N) are female probes 10 and 12.
    rates = m.group_fairness["gender"]["error_rates"]["by_value"]
    assert rates["female"]["fmr"] == pytest.approx(1 / 66) and rates["male"]["fmr"] == 0.0
    assert rates["female"]["fnmr"] == pytest.approx(2 / 6) and rates["male"]["fnmr"] == 0.0
    assert m.group_fairness["gender"]["rank1_gap"]["gap"] == pytest.approx(1 - 4 / 6)
    text = to_markdown(run)
    assert "rank-1 gap (gender)" in text and "33.3 pts [" in text
    assert "| gender: female | 6 | 1.52% | 33.33% |" in text
