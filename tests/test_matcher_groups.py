"""The matcher's training by group: composition, group-balanced epochs, per-group validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facefit.errors import InputError
from facefit.matcher.data import Pair
from facefit.matcher.model import load_base
from facefit.matcher.train import (
    TrainSettings,
    balanced_rows,
    composition,
    fit,
    group_rank1,
    pair_groups,
)
from tests.test_matcher import SPLIT, _face_data


def _pairs(genders):
    return [
        Pair(f"fs2k/{i}", f"fs2k/{i}", None, None, "fs2k", gender=g) for i, g in enumerate(genders)
    ]


def test_composition_counts_pairs_per_gender_and_unknown():
    pairs = _pairs(["female", "male", "male", None])
    assert pair_groups(pairs) == ["female", "male", "male", "unknown"]
    assert composition(pairs) == {"female": 1, "male": 2, "unknown": 1}


def test_balanced_epoch_gives_every_group_an_equal_share():
    # 2 women, 6 men, 8 rows per epoch: 4 each; each woman twice, 4 of the 6 men once
    groups = ["female"] * 2 + ["male"] * 6
    rows = balanced_rows(groups, np.random.default_rng(0))
    assert len(rows) == 8
    assert sorted(np.bincount(rows, minlength=8)[:2].tolist()) == [2, 2]
    men = np.bincount(rows, minlength=8)[2:]
    assert men.sum() == 4 and men.max() == 1


def test_balanced_epoch_with_an_odd_count_differs_by_one():
    rows = balanced_rows(["a", "b", "b", "b", "c"], np.random.default_rng(1))
    counts = {g: sum(1 for r in rows if ["a", "b", "b", "b", "c"][r] == g) for g in "abc"}
    assert sorted(counts.values()) == [1, 2, 2] and len(rows) == 5


def test_group_rank1_and_gap():
    out = group_rank1(np.array([1, 2, 1, 1]), ["female", "female", "male", "male"])
    assert out == {"female": 0.5, "male": 1.0, "gap": 0.5}
    assert group_rank1(np.array([1]), ["male"]) == {"male": 1.0}  # one group: no gap


def test_unknown_balance_is_refused():
    with pytest.raises(InputError, match="balance must be one of"):
        TrainSettings(balance="age").check()


def test_fit_reports_composition_and_per_group_validation(tmp_path):
    from tests.test_matcher import write_tiny_sface

    write_tiny_sface(tmp_path / "sface.onnx")
    base = load_base(tmp_path / "sface.onnx")
    data = _face_data(24)
    data.pairs = [
        Pair(p.key, p.identity, None, None, "fs2k", gender="female" if i % 3 == 0 else "male")
        for i, p in enumerate(data.pairs)
    ]
    settings = TrainSettings(
        epochs=2, lr=1e-3, batch_size=8, val_pairs=6, split=SPLIT, s=16.0, threads=1,
        balance="gender",
    )  # fmt: skip
    result = fit(base, data, settings, cache_dir=tmp_path)
    train, val = result.composition["train"], result.composition["val"]
    assert sum(train.values()) == result.train_pairs and sum(val.values()) == result.val_pairs
    assert train["female"] + val.get("female", 0) == 8
    row = result.history[-1]
    groups = [k for k in row if k.startswith("val_rank1_") and k != "val_rank1_gap"]
    assert groups and all(0 <= row[k] <= 1 for k in groups)
    # balanced: the epoch has as many samples as there are training sketches
    assert result.steps == 2 * -(-result.train_pairs // 8)


def test_model_card_reports_performance_by_group():
    from facefit.matcher.card import model_card

    config = {
        "data": {"composition": {"train": {"female": 30, "male": 70}}, "balance": "gender"},
        "metrics": {
            "val_baseline": {"val_rank1_female": 0.5, "val_rank1_male": 0.6},
            "val_best": {"val_rank1_female": 0.7, "val_rank1_male": 0.8, "val_rank1_gap": 0.1},
        },
        "dev": {
            "groups": [
                {"encoder": "this matcher", "group": "gender", "value": "female",
                 "probes": 10, "rank1": 0.6, "fmr": 0.01, "fnmr": 0.2},
            ],
            "gaps": [
                {"encoder": "this matcher", "group": "gender", "gap": 0.05,
                 "ci": [-0.02, 0.12], "best": "male", "worst": "female"},
            ],
        },
    }  # fmt: skip
    card = model_card(config)
    assert "## Performance by group" in card
    assert "training pairs by gender (FS2K annotation): female 30 (30%), male 70 (70%)" in card
    assert "female 50.0% → 70.0%, male 60.0% → 80.0%" in card
    assert "| this matcher | gender: female | 10 | 60.0% | 1.00% | 20.0% |" in card
    assert "gap 5.0 pts [-2.0, 12.0] (male − female)" in card
    assert "balanced by gender" in card


# -- apparent skin tone (issue 21) -----------------------------------------------------------


def _skin_pairs(tones, genders=None):
    genders = genders or ["female"] * len(tones)
    return [
        Pair(f"fs2k/{i}", f"fs2k/{i}", None, None, "fs2k", gender=g, skin_tone=t)
        for i, (t, g) in enumerate(zip(tones, genders, strict=True))
    ]


def test_skin_tone_bins_cover_every_word_of_the_ita_scale():
    """One table (facefit.datasets.attributes) bins for eval and train-matcher alike;
    every word skin_tone_name can give has a bin."""
    from facefit.datasets.attributes import SKIN_TONE_BINS, skin_tone_name

    greys = [(v, v, v) for v in range(0, 256, 15)]
    warm = [(r, int(r * 0.75), int(r * 0.55)) for r in range(20, 256, 10)]
    words = {skin_tone_name(c) for c in greys + warm}
    assert words <= set(SKIN_TONE_BINS)
    assert set(SKIN_TONE_BINS.values()) == {"light", "medium", "dark"}


def test_pair_groups_by_skin_tone_and_by_gender_and_skin_tone():
    pairs = _skin_pairs(["light", "dark", None], ["female", "male", "male"])
    assert pair_groups(pairs, "skin") == ["light", "dark", "unknown"]
    assert pair_groups(pairs, "gender-skin") == ["female/light", "male/dark", "unknown"]
    assert composition(pairs, "skin") == {"dark": 1, "light": 1, "unknown": 1}
    with pytest.raises(InputError, match="groups are by one of"):
        pair_groups(pairs, "age")


def test_skin_balanced_epoch_draws_unknown_once_and_shares_the_rest():
    # 6 light, 2 medium, 1 dark, 1 unknown: 10 rows; unknown once, 3 per known group
    groups = ["light"] * 6 + ["medium"] * 2 + ["dark"] + ["unknown"]
    rows = balanced_rows(groups, np.random.default_rng(0), natural=("unknown",))
    counts = np.bincount(rows, minlength=10)
    assert len(rows) == 10
    assert counts[9] == 1  # unknown: its natural count, not a third of the epoch
    assert counts[8] == 3  # the one dark pair three times
    assert counts[6:8].sum() == 3 and counts[:6].sum() == 3 and counts[:6].max() == 1


@pytest.mark.parametrize(
    ("balance", "expected"),
    [
        ("skin", ["light", "light", "light", "dark", "medium", "unknown"]),
        ("gender-skin", ["female/light", "male/light", "female/light", "male/dark",
                         "female/medium", "unknown"]),
    ],
)  # fmt: skip
def test_fit_balances_each_epoch_over_skin_tone(tmp_path, monkeypatch, balance, expected):
    """Every epoch's order comes from balanced_rows over the asked-for groups; a fit
    that stopped balancing (or balanced by gender) fails here."""
    import facefit.matcher.train as train
    from tests.test_matcher import write_tiny_sface

    write_tiny_sface(tmp_path / "sface.onnx")
    base = load_base(tmp_path / "sface.onnx")
    data = _face_data(24)
    tones = ["light", "light", "light", "dark", "medium", None]
    genders = ["female", "male"]
    data.pairs = [
        Pair(p.key, p.identity, None, None, "fs2k", gender=genders[i % 2], skin_tone=tones[i % 6])
        for i, p in enumerate(data.pairs)
    ]
    calls = []
    real = train.balanced_rows

    def spy(groups, rng, natural=(), weights=None):
        calls.append((list(groups), tuple(natural)))
        return real(groups, rng, natural, weights)

    monkeypatch.setattr(train, "balanced_rows", spy)
    settings = TrainSettings(
        epochs=2, lr=1e-3, batch_size=8, val_pairs=6, split=SPLIT, s=16.0, threads=1,
        balance=balance,
    )  # fmt: skip
    result = fit(base, data, settings, cache_dir=tmp_path)
    assert len(calls) == 2  # one balanced draw per epoch (sketches only)
    for groups, natural in calls:
        assert natural == ("unknown",)
        assert len(groups) == result.train_pairs
        assert set(groups) <= set(expected)
        assert set(groups) - {"unknown"}  # grouped by skin tone, not by gender alone
        assert not set(groups) & {"female", "male"}
    assert set(result.composition["train_skin_tone"]) <= {"light", "medium", "dark", "unknown"}
    row = result.history[-1]
    skin = [k for k in row if k.startswith("val_skin_rank1_")]
    assert skin and all(0 <= row[k] <= 1 for k in skin)


def test_unbalanced_and_gender_balanced_fits_keep_their_draws(tmp_path, monkeypatch):
    import facefit.matcher.train as train
    from tests.test_matcher import write_tiny_sface

    write_tiny_sface(tmp_path / "sface.onnx")
    base = load_base(tmp_path / "sface.onnx")
    data = _face_data(16)
    data.pairs = [
        Pair(p.key, p.identity, None, None, "fs2k", gender=("female", "male")[i % 2])
        for i, p in enumerate(data.pairs)
    ]
    calls = []
    real = train.balanced_rows
    monkeypatch.setattr(
        train,
        "balanced_rows",
        lambda g, rng, natural=(), weights=None: (
            calls.append((list(g), tuple(natural))) or real(g, rng, natural, weights)
        ),
    )
    common = {"epochs": 1, "lr": 1e-3, "batch_size": 8, "val_pairs": 4, "split": SPLIT,
              "s": 16.0, "threads": 1}  # fmt: skip
    fit(base, data, TrainSettings(**common), cache_dir=tmp_path)
    assert calls == []
    fit(base, data, TrainSettings(**common, balance="gender"), cache_dir=tmp_path)
    assert len(calls) == 1 and calls[0][1] == () and set(calls[0][0]) == {"female", "male"}


def test_fs2k_training_pairs_carry_the_evaluations_skin_tone(shared_data):
    from facefit.matcher.data import fs2k_training_pairs

    pairs = fs2k_training_pairs(shared_data)
    tones = composition(pairs, "skin")
    # the composition documented in benchmarks/results/matcher_shipped.md (eval's bins)
    assert tones == {"light": 485, "medium": 171, "dark": 101, "unknown": 1}


# -- FS2K sketch style (issue 21) ------------------------------------------------------------


def _styled(data, styles, genders=("female", "male")):
    """``data`` with each pair's style from ``styles`` and gender from ``genders`` (cycled)."""
    data.pairs = [
        Pair(p.key, p.identity, None, None, "fs2k", gender=genders[i % len(genders)],
             style=styles[i % len(styles)])
        for i, p in enumerate(data.pairs)
    ]  # fmt: skip
    return data


def test_pair_groups_by_style_and_by_gender_and_style():
    pairs = [
        Pair("fs2k/0", "fs2k/0", None, None, "fs2k", gender="female", style="0"),
        Pair("fs2k/1", "fs2k/1", None, None, "fs2k", gender="male", style="2"),
        Pair("fs2k/2", "fs2k/2", None, None, "fs2k", gender="male"),
    ]
    assert pair_groups(pairs, "style") == ["0", "2", "unknown"]
    assert pair_groups(pairs, "gender-style") == ["female/0", "male/2", "unknown"]
    assert composition(pairs, "style") == {"0": 1, "2": 1, "unknown": 1}


def test_weighted_epoch_gives_shares_in_proportion():
    # 4 + 4 + 4 rows; weights 2:1:1 -> 6 / 3 / 3 of 12; the "0" rows each drawn 1-2 times
    groups = ["0"] * 4 + ["1"] * 4 + ["2"] * 4
    rows = balanced_rows(groups, np.random.default_rng(0), weights={"0": 2.0})
    counts = np.bincount(rows, minlength=12)
    assert len(rows) == 12
    assert [counts[:4].sum(), counts[4:8].sum(), counts[8:].sum()] == [6, 3, 3]
    assert counts[:4].min() >= 1 and counts[4:].max() == 1
    # no weights, or all equal: the equal-share draw, row for row
    plain = balanced_rows(groups, np.random.default_rng(3))
    assert np.array_equal(balanced_rows(groups, np.random.default_rng(3), weights={}), plain)
    # shares that do not divide: the remainder goes to the largest fraction, total kept
    rows = balanced_rows(["a"] * 5 + ["b"] * 2, np.random.default_rng(1), weights={"b": 2.0})
    assert len(rows) == 7 and int((rows >= 5).sum()) == 5  # 7 * 2/3 = 4.67 -> 5


def test_style_weights_need_a_style_balance_and_positive_values():
    with pytest.raises(InputError, match="need balance style or gender-style"):
        TrainSettings(balance="gender", style_weights={"0": 2.0})
    with pytest.raises(InputError, match="more than 0"):
        TrainSettings(balance="style", style_weights={"0": 0.0})
    assert TrainSettings(balance="gender-style", style_weights={"0": 2.0}).style_weights


def _epoch_style_counts(tmp_path, monkeypatch, data, **settings):
    """Fit ``data`` on the tiny SFace; each epoch's sketch draws counted per style."""
    import facefit.matcher.train as train
    from tests.test_matcher import write_tiny_sface

    tmp_path.mkdir(exist_ok=True)
    write_tiny_sface(tmp_path / "sface.onnx")
    base = load_base(tmp_path / "sface.onnx")
    epochs, real = [], train._Epochs.order

    def spy(self):
        order = real(self)
        styles = [self.split.train_pairs[r].style or "unknown" for r in order[:, 0]]
        epochs.append({s: styles.count(s) for s in sorted(set(styles))})
        return order

    monkeypatch.setattr(train._Epochs, "order", spy)
    common = {"epochs": 2, "lr": 1e-3, "batch_size": 8, "val_pairs": 6, "split": SPLIT,
              "s": 16.0, "threads": 1}  # fmt: skip
    result = fit(base, data, TrainSettings(**{**common, **settings}), cache_dir=tmp_path)
    return result, epochs


@pytest.mark.parametrize("balance", ["style", "gender-style"])
def test_style_balanced_epochs_draw_each_style_equally(tmp_path, monkeypatch, balance):
    # 36 pairs: style "0" one in six, "1" two in six, "2" three in six; both genders in each
    styles = ["0", "1", "1", "2", "2", "2"]
    data = _styled(_face_data(36), styles, ("female", "female", "male", "male"))
    natural = [p.style for p in data.pairs]
    result, epochs = _epoch_style_counts(tmp_path, monkeypatch, data, balance="none")
    train = result.composition["train_style"]
    assert sum(train.values()) == result.train_pairs == sum(epochs[0].values())
    assert all(e == train for e in epochs)  # unbalanced: each sketch once
    assert train["0"] < train["1"] < train["2"]
    assert set(result.composition["val_style"]) <= set(natural)
    row = result.history[-1]
    assert {k for k in row if k.startswith("val_style_rank1_")} - {"val_style_rank1_gap"}

    _, epochs = _epoch_style_counts(tmp_path, monkeypatch, data, balance=balance)
    n = result.train_pairs
    for epoch in epochs:
        assert sum(epoch.values()) == n
        # an equal third each (gender-style: a sixth per cell, two cells per style)
        assert max(epoch.values()) - min(epoch.values()) <= (1 if balance == "style" else 2)
    _, epochs = _epoch_style_counts(
        tmp_path, monkeypatch, data, balance=balance, style_weights={"0": 2.0}
    )
    for epoch in epochs:  # style 0 has half the epoch, the two others a quarter each
        assert abs(epoch["0"] - n / 2) <= 1 and abs(epoch["1"] - n / 4) <= 1


@pytest.mark.parametrize("balance", ["none", "gender"])
def test_styles_change_nothing_unless_balanced_by_style(tmp_path, monkeypatch, balance):
    """The same draws and weights as before pairs had a style: only the history gains
    per-style validation figures."""
    import torch

    plain = _styled(_face_data(24), [None])
    styled = _styled(_face_data(24), ["0", "1", "2"])
    first, draws = _epoch_style_counts(tmp_path / "a", monkeypatch, plain, balance=balance)
    second, _ = _epoch_style_counts(tmp_path / "b", monkeypatch, styled, balance=balance)
    assert draws and first.steps == second.steps
    a, b = first.tail.state_dict(), second.tail.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for x, y in zip(first.history, second.history, strict=True):  # (epoch 0's loss is NaN)
        kept = {k: v for k, v in y.items() if not k.startswith("val_style_")}
        assert json.dumps(kept, sort_keys=True) == json.dumps(x, sort_keys=True)
    assert not any(k.startswith("val_style_") for k in first.history[-1])


def test_style_weight_option_is_parsed_and_checked():
    from facefit.cli.matcher import _style_weights

    assert _style_weights(("0=2", "1=0.5")) == {"0": 2.0, "1": 0.5}
    assert _style_weights(()) == {}
    for bad in ("0", "=2", "0=x"):
        with pytest.raises(InputError, match="expected STYLE=W"):
            _style_weights((bad,))


def test_model_card_names_style_weights():
    from facefit.matcher.card import model_card

    config = {
        "data": {"composition": {}, "balance": "style"},
        "settings": {"style_weights": {"0": 2.0}},
        "metrics": {},
    }
    assert "balanced by style (shares per epoch weighted by style: style 0 ×2)" in model_card(
        config
    )


def test_fs2k_training_pairs_carry_the_sketch_style(shared_data):
    from facefit.datasets.persons import load_persons
    from facefit.matcher.data import fs2k_training_pairs

    pairs = fs2k_training_pairs(shared_data, load_persons(shared_data))
    # benchmarks/results/matcher_fairness_analysis.md: style 0 and 1 in photo1, 2 elsewhere
    assert composition(pairs, "style") == {"0": 270, "1": 236, "2": 252}
    assert {p.style for p in pairs if p.key.startswith("fs2k/photo1")} == {"0", "1"}
