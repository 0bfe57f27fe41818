"""Persons: two recognizers must agree; the grouping is deterministic and tied to its data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facefit.datasets.persons import Persons, group_persons, input_fingerprints, load_persons
from facefit.errors import InputError


def _unit(rng, n, dim=16):
    v = rng.normal(size=(n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _near(vector, rng, noise):
    v = vector + noise * rng.normal(size=vector.shape)
    return v / np.linalg.norm(v)


@pytest.fixture
def made_up():
    """FS2K a, b same person by both recognizers; c agrees with a only for SFace;
    CelebA identity 7 has two photos of d, identity 8 one photo of e."""
    rng = np.random.default_rng(0)
    s, d = _unit(rng, 5), _unit(rng, 5)
    s[1], d[1] = _near(s[0], rng, 0.05), _near(d[0], rng, 0.05)
    s[2] = _near(s[0], rng, 0.05)  # dlib says no
    ids = ["a", "b", "c", "d", "e"]
    cs = np.stack([_near(s[3], rng, 0.05), _near(s[3], rng, 0.05), _near(s[4], rng, 0.05)])
    cd = np.stack([_near(d[3], rng, 0.05), _near(d[3], rng, 0.05), _near(d[4], rng, 0.05)])
    cs = np.vstack([cs, _unit(rng, 1)])
    cd = np.vstack([cd, _unit(rng, 1)])
    return ids, (s, d), ["7", "7", "8", "9"], (cs, cd)


def test_links_only_where_both_recognizers_agree(made_up):
    grouping = group_persons(*made_up)
    p = grouping.persons
    assert p["fs2k/a"] == p["fs2k/b"] == "fs2k/a"
    assert p["fs2k/c"] == "fs2k/c"  # one recognizer is not enough
    assert p["celeba/7"] == p["fs2k/d"]  # two CelebA photos agree with d
    assert p["celeba/8"] == "celeba/8" and p["fs2k/e"] == "fs2k/e"  # one photo is not enough
    assert p["celeba/9"] == "celeba/9"
    assert [(a, b) for a, b, _, _ in grouping.links] == [
        ("fs2k/a", "fs2k/b"),
        ("fs2k/d", "celeba/7"),
    ]


def test_grouping_is_deterministic_and_independent_of_input_order(made_up):
    ids, (s, d), labels, (cs, cd) = made_up
    first = group_persons(ids, (s, d), labels, (cs, cd))
    again = group_persons(ids, (s.copy(), d.copy()), list(labels), (cs.copy(), cd.copy()))
    order = [4, 2, 0, 3, 1]
    shuffled = group_persons([ids[i] for i in order], (s[order], d[order]), labels, (cs, cd))
    assert first == again
    assert first.persons == shuffled.persons


def test_a_photo_without_a_face_stays_alone(made_up):
    ids, (s, d), labels, celeba = made_up
    s = s.copy()
    s[1] = np.nan
    grouping = group_persons(ids, (s, d), labels, celeba)
    assert grouping.persons["fs2k/b"] == "fs2k/b"
    assert grouping.no_face == ["fs2k/b"]


def _tiny_data(tmp_path):
    (tmp_path / "fs2k-train").mkdir(parents=True)
    (tmp_path / "celeba-subset").mkdir()
    (tmp_path / "fs2k-train" / "annotations.json").write_text('[{"id": "photo1_0001"}]')
    (tmp_path / "celeba-subset" / "identities.csv").write_text("image,celeba_identity\n1.jpg,3\n")
    return tmp_path


def test_grouping_made_from_other_data_is_refused(tmp_path):
    data = _tiny_data(tmp_path / "data")
    grouping = tmp_path / "persons.json"
    inputs = input_fingerprints(data)
    grouping.write_text(json.dumps({"persons": {"fs2k/photo1_0001": "x"}, "inputs": inputs}))
    assert load_persons(data, path=grouping).fs2k_person("photo1_0001") == "x"

    (data / "fs2k-train" / "annotations.json").write_text('[{"id": "photo1_0002"}]')
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"persons": {}, "inputs": inputs}))
    with pytest.raises(InputError, match=r"annotations\.json.*sha256 mismatch.*group_persons"):
        load_persons(data, path=stale)


def test_unknown_items_are_their_own_person():
    persons = Persons({"fs2k/a": "fs2k/a", "celeba/1": "fs2k/a"}, {})
    assert persons.fs2k_person("zz") == "fs2k/zz"
    assert persons.celeba_person("1") == "fs2k/a"
    assert persons.members("fs2k/a") == ["celeba/1", "fs2k/a"]


@pytest.mark.shared_data
def test_committed_grouping_matches_the_shared_data(shared_data):
    persons = load_persons(shared_data)
    from facefit.datasets.splits import load_celeba_rows, load_fs2k_annotations

    fs2k = {a["id"] for a in load_fs2k_annotations(shared_data)}
    celeba = {r["celeba_identity"] for r in load_celeba_rows(shared_data)}
    assert {k for k in persons.persons if k.startswith("fs2k/")} == {f"fs2k/{i}" for i in fs2k}
    assert {k for k in persons.persons if k.startswith("celeba/")} == {
        f"celeba/{i}" for i in celeba
    }
