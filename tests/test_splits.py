"""The development split is a fixed rule and never overlaps training."""

from __future__ import annotations

import pytest

from facefit.errors import InputError
from facefit.splits import (
    CELEBA_DEV_FINGERPRINT,
    FS2K_DEV_FINGERPRINT,
    celeba_split,
    fs2k_split,
    split_celeba_rows,
    split_fs2k_ids,
)


def test_fs2k_rule_takes_the_last_pairs_of_each_photo_group_in_proportion():
    # groups of 300, 150 and 50 pairs: 120, 60 and 20 held out
    ids = [f"photo1_{i:04d}" for i in range(300)]
    ids += [f"photo2_{i:04d}" for i in range(150)] + [f"photo3_{i:04d}" for i in range(50)]
    split = split_fs2k_ids(list(reversed(ids)))
    assert len(split.dev) == 200
    for group, held_out in (("photo1", 120), ("photo2", 60), ("photo3", 20)):
        members = sorted(i for i in ids if i.startswith(group))
        assert tuple(i for i in split.dev if i.startswith(group)) == tuple(members[-held_out:])
    assert not set(split.dev) & set(split.train)
    assert len(split.train) + len(split.dev) == len(ids)


def test_fs2k_rounding_still_holds_out_exactly_200():
    ids = [f"photo1_{i:04d}" for i in range(707)] + [f"photo2_{i:04d}" for i in range(98)]
    ids += [f"photo3_{i:04d}" for i in range(253)]
    dev = split_fs2k_ids(ids).dev
    counts = [sum(i.startswith(g) for i in dev) for g in ("photo1", "photo2", "photo3")]
    assert counts == [134, 18, 48]
    with pytest.raises(InputError, match="FS2K"):
        split_fs2k_ids(ids[:200])


def test_celeba_rule_holds_out_whole_identities_by_numeric_id():
    rows = [(f"{n:06d}.jpg", str(n % 50 + 5)) for n in range(300)]  # ids 5..54
    split = split_celeba_rows(rows)
    identity = dict(rows)
    assert {identity[i] for i in split.dev} == {str(n) for n in range(15, 55)}
    assert not {identity[i] for i in split.dev} & {identity[i] for i in split.train}


@pytest.mark.shared_data
def test_split_of_the_shared_data_is_the_one_fixed_in_code(shared_data):
    fs2k = fs2k_split(shared_data)
    celeba = celeba_split(shared_data)
    assert (len(fs2k.dev), len(fs2k.train)) == (200, 858)
    assert fs2k.fingerprint == FS2K_DEV_FINGERPRINT
    assert celeba.fingerprint == CELEBA_DEV_FINGERPRINT
    assert not set(celeba.dev) & set(celeba.train)
