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


def test_fs2k_rule_takes_last_200_by_sorted_id():
    ids = [f"photo{i % 3 + 1}_{i:04d}" for i in range(500)]
    split = split_fs2k_ids(list(reversed(ids)))
    assert len(split.dev) == 200
    assert split.dev == tuple(sorted(ids)[-200:])
    assert not set(split.dev) & set(split.train)
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
