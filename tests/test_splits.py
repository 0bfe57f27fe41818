"""The development split is a fixed rule by person and never overlaps training."""

from __future__ import annotations

import pytest

from facefit.datasets.splits import (
    CELEBA_DEV_FINGERPRINT,
    CELEBA_DEV_IDENTITIES,
    FS2K_CALIBRATION_FINGERPRINT,
    FS2K_CALIBRATION_PAIRS,
    FS2K_DEV_FINGERPRINT,
    FS2K_DEV_PAIRS,
    celeba_split,
    dev_persons,
    fingerprint,
    fs2k_calibration,
    fs2k_split,
    fs2k_training,
    refuse_dev,
    split_by_person,
)
from facefit.errors import InputError


def _made_up(n_pairs=600, n_identities=120):
    """Pairs of 1-4 photos per person; every 10th CelebA identity is an FS2K person."""
    ids = [f"photo1_{i:04d}" for i in range(n_pairs)]
    fs2k_person = {i: f"p{int(i[-4:]) // (1 + int(i[-4:]) % 4)}" for i in ids}
    identities = [str(n) for n in range(1, n_identities + 1)]
    celeba_person = {
        c: (fs2k_person[ids[int(c) * 3]] if int(c) % 10 == 0 else f"c{c}") for c in identities
    }
    return ids, identities, fs2k_person, celeba_person


def _split(ids, identities, fs2k_person, celeba_person, **kw):
    return split_by_person(ids, identities, fs2k_person.get, celeba_person.get, **kw)


def test_no_person_is_on_both_sides():
    ids, identities, fp, cp = _made_up()
    split = _split(ids, identities, fp, cp)
    train = {fp[i] for i in split.fs2k.train} | {cp[c] for c in split.celeba_identities.train}
    dev = {fp[i] for i in split.fs2k.dev} | {cp[c] for c in split.celeba_identities.dev}
    assert dev and not train & dev
    assert dev == split.dev_persons
    assert len(split.fs2k.dev) <= FS2K_DEV_PAIRS and len(split.fs2k.dev) >= FS2K_DEV_PAIRS - 3
    assert len(split.celeba_identities.dev) >= CELEBA_DEV_IDENTITIES
    assert sorted(split.fs2k.train + split.fs2k.dev) == sorted(ids)


def test_calibration_slice_is_whole_training_persons_without_celeba_photos():
    ids, identities, fp, cp = _made_up()
    split = _split(ids, identities, fp, cp)
    assert FS2K_CALIBRATION_PAIRS - 3 <= len(split.calibration) <= FS2K_CALIBRATION_PAIRS
    assert set(split.calibration) <= set(split.fs2k.train)
    assert {fp[i] for i in split.calibration} == split.calibration_persons
    assert not split.calibration_persons & split.dev_persons
    assert not split.calibration_persons & {cp[c] for c in identities}
    rest = {fp[i] for i in split.fs2k.train if i not in split.calibration}
    assert not rest & split.calibration_persons  # a person is wholly in the slice or out


def test_celeba_identities_follow_their_fs2k_person():
    ids, identities, fp, cp = _made_up()
    split = _split(ids, identities, fp, cp)
    for c in identities:
        if cp[c].startswith("p"):  # shares a person with FS2K pairs
            fs2k_side = {("dev" if i in split.fs2k.dev else "train") for i in ids if fp[i] == cp[c]}
            celeba_side = "dev" if c in split.celeba_identities.dev else "train"
            assert fs2k_side == {celeba_side}


def test_rule_is_deterministic_and_seeded_by_the_demo_pairs():
    ids, identities, fp, cp = _made_up()
    first = _split(ids, identities, fp, cp, seed_pairs=("photo1_0007",))
    again = _split(
        list(reversed(ids)), list(reversed(identities)), fp, cp, seed_pairs=("photo1_0007",)
    )
    assert first == again
    assert "photo1_0007" in first.fs2k.dev
    assert all(i in first.fs2k.dev for i in ids if fp[i] == fp["photo1_0007"])


def test_too_little_data_is_refused():
    ids, identities, fp, cp = _made_up()
    with pytest.raises(InputError, match="FS2K"):
        _split(ids[:FS2K_DEV_PAIRS], identities, fp, cp)
    with pytest.raises(InputError, match="CelebA"):
        _split(ids, identities[:20], fp, cp)


@pytest.mark.shared_data
def test_split_of_the_shared_data_is_the_one_fixed_in_code(shared_data):
    fs2k = fs2k_split(shared_data)
    celeba = celeba_split(shared_data)
    assert 190 <= len(fs2k.dev) <= 200 and len(fs2k.dev) + len(fs2k.train) == 1058
    assert fs2k.fingerprint == FS2K_DEV_FINGERPRINT
    assert celeba.fingerprint == CELEBA_DEV_FINGERPRINT
    assert not set(celeba.dev) & set(celeba.train)


@pytest.mark.shared_data
def test_no_development_person_in_any_training_data(shared_data):
    from facefit.datasets.persons import load_persons
    from facefit.datasets.splits import CELEBA_DIR, load_celeba_rows

    persons = load_persons(shared_data)
    held = dev_persons(shared_data)
    train_images = set(celeba_split(shared_data).train)
    rows = [r for r in load_celeba_rows(shared_data) if r["image"] in train_images]
    seen = {persons.fs2k_person(i) for i in fs2k_split(shared_data).train}
    seen |= {persons.celeba_person(r["celeba_identity"]) for r in rows}
    assert not seen & held  # 0 development persons in training data
    assert (shared_data / CELEBA_DIR).is_dir()
    refuse_dev(shared_data, fs2k_ids=fs2k_training(shared_data), what="test")
    with pytest.raises(InputError, match="development-split or calibration persons"):
        refuse_dev(shared_data, fs2k_ids=fs2k_split(shared_data).dev[:1], what="test")


@pytest.mark.shared_data
def test_calibration_slice_of_the_shared_data(shared_data):
    calibration = fs2k_calibration(shared_data)
    assert len(calibration) == FS2K_CALIBRATION_PAIRS
    assert fingerprint(calibration).startswith(FS2K_CALIBRATION_FINGERPRINT)
    assert not set(calibration) & set(fs2k_training(shared_data))
    assert len(calibration) + len(fs2k_training(shared_data)) == len(fs2k_split(shared_data).train)
    with pytest.raises(InputError, match="calibration persons"):
        refuse_dev(shared_data, fs2k_ids=calibration[:1], what="test")
