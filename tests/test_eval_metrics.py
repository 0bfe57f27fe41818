"""Identification metrics on score matrices whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facefit.errors import InputError
from facefit.evaluation.metrics import (
    cmc,
    genuine_impostor,
    group_breakdown,
    identification_metrics,
    tar_at_far,
    true_ranks,
    wilson_interval,
)

SCORES = np.array(
    [
        [0.9, 0.1, 0.2, 0.3, 0.0],  # truth 0: best → rank 1
        [0.5, 0.4, 0.6, 0.1, 0.0],  # truth 1: two above → rank 3
        [0.2, 0.2, 0.2, 0.2, 0.2],  # truth 2: all tied → rank 5 (ties count against)
        [0.0, 0.0, 0.0, 0.7, 0.1],  # truth 3, but the probe failed → rank 5
    ]
)
TRUTH = np.array([0, 1, 2, 3])
FAILED = np.array([False, False, False, True])


def test_ranks_are_pessimistic_on_ties():
    assert true_ranks(SCORES, TRUTH).tolist() == [1, 3, 5, 1]


def test_cmc_counts_ranks_cumulatively():
    assert cmc(np.array([1, 3, 5, 5]), 5).tolist() == [0.25, 0.25, 0.5, 0.5, 1.0]
    assert cmc(np.array([7]), 3).tolist() == [0.0, 0.0, 0.0]


def test_failed_probe_is_a_miss_and_not_an_impostor_comparison():
    m = identification_metrics(SCORES, TRUTH, failed=FAILED)
    assert m.ranks.tolist() == [1, 3, 5, 5]
    assert m.rank_rates == {1: 0.25, 5: 1.0, 10: 1.0}
    assert m.failed == 1 and m.probes == 4 and m.identities == 5
    genuine, impostor = genuine_impostor(SCORES, TRUTH, FAILED)
    assert genuine[3] == -np.inf
    assert len(impostor) == 3 * 4  # three usable probes × four other identities


def test_tar_at_far_on_known_distributions():
    impostor = np.arange(1000) / 1000  # 0.000 … 0.999
    genuine = np.array([0.9995, 0.995, 0.99, 0.5])
    # FAR 1e-2: 10 impostors (0.990…0.999) may pass → threshold 0.989, accept > 0.989
    assert tar_at_far(genuine, impostor, 1e-2) == 0.75
    # FAR 1e-3: one impostor (0.999) may pass → threshold 0.998
    assert tar_at_far(genuine, impostor, 1e-3) == 0.25
    # exactly the allowed number of impostors is accepted at that threshold
    threshold = np.sort(impostor)[::-1][10]
    assert (impostor > threshold).sum() == 10


def test_tar_is_none_when_far_cannot_be_resolved():
    assert tar_at_far(np.array([1.0]), np.zeros(50), 1e-3) is None
    assert tar_at_far(np.array([1.0]), np.zeros(1000), 1e-3) == 1.0


def test_tar_in_metrics_from_the_score_matrix():
    rng = np.random.default_rng(0)
    n = 40
    scores = rng.uniform(0.0, 0.5, size=(n, n))
    scores[np.arange(n), np.arange(n)] = 0.9  # every genuine pair above every impostor
    m = identification_metrics(scores, np.arange(n))
    assert m.rank1 == 1.0
    assert m.tar[1e-2] == 1.0 and m.tar[1e-3] == 1.0  # 1,560 impostor pairs
    assert m.genuine_mean == pytest.approx(0.9)


def test_group_breakdown_with_wilson_interval():
    ranks = np.array([1, 1, 2, 1, 3, 1])
    groups = [
        {"gender": "female"},
        {"gender": "female"},
        {"gender": "female"},
        {"gender": "male", "skin": "dark"},
        {"gender": "male"},
        {},
    ]
    out = group_breakdown(ranks, groups)
    assert out["gender"]["female"]["probes"] == 3
    assert out["gender"]["female"]["rank1"] == pytest.approx(2 / 3)
    assert out["gender"]["male"]["rank1"] == 0.5
    assert out["skin"] == {"dark": {"probes": 1, "rank1": 1.0, "rank1_ci95": [0.2065, 1.0]}}
    lo, hi = wilson_interval(2, 3)
    assert lo < 2 / 3 < hi


def test_wilson_of_nothing_is_nan():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(InputError, match="gallery is empty"):
        true_ranks(np.zeros((2, 0)), np.array([0, 0]))
    with pytest.raises(InputError, match="outside"):
        true_ranks(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(InputError, match="NaN"):
        true_ranks(np.full((1, 2), np.nan), np.array([0]))
