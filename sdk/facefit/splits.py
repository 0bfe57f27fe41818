"""The development split: data that training never sees and evaluation grades on.

The split is a rule fixed here, not a file: :data:`FS2K_DEV_PAIRS` FS2K pairs,
the last by sorted id of each photo group in proportion to its size, and the last :data:`CELEBA_DEV_IDENTITIES` CelebA identities by
numeric id (all of their photos, so no development identity leaks into training).
Training code and the evaluation harness both import this module; nothing else may
decide what is held out.

    >>> from facefit.splits import fs2k_split, celeba_split
    >>> fs2k = fs2k_split(data_dir)        # .train / .dev: lists of pair ids
    >>> celeba = celeba_split(data_dir)    # .train / .dev: lists of image file names

:func:`check_fingerprints` compares the split found on disk with the one this
project was developed on, so a changed data folder is noticed instead of silently
moving images between training and evaluation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from facefit.errors import InputError

log = logging.getLogger(__name__)

FS2K_DEV_PAIRS = 200
"""How many FS2K pairs are held out (the last of each photo group, proportionally)."""
CELEBA_DEV_IDENTITIES = 40
"""How many CelebA identities (the last by numeric id) are held out, with all their photos."""

FS2K_DIR = "fs2k-train"
CELEBA_DIR = "celeba-subset"

# sha256 of "\n".join(dev ids) for ../shared/data as it was when the split was fixed
FS2K_DEV_FINGERPRINT = "a45c20a86d1e4f6504fe24aa8a645fed780cc29dd844f8656cdcd57fd2c77250"
CELEBA_DEV_FINGERPRINT = "f6c86eaaded0f868605949e2a7c94e9b7008be61eb46432dfef5d2567a5f66b4"


@dataclass(frozen=True)
class Split:
    """Item ids on each side of the split, in a stable order."""

    train: tuple[str, ...]
    dev: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        """sha256 of the development ids, to detect a changed data folder."""
        return fingerprint(self.dev)


def fingerprint(ids: tuple[str, ...] | list[str]) -> str:
    """sha256 of the ids joined by newlines."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _photo_group(pair_id: str) -> str:
    # FS2K ids are "photoN_XXXX": N is the photo group (source and sketch style differ by group)
    return pair_id.split("_", 1)[0]


def split_fs2k_ids(ids: list[str] | tuple[str, ...]) -> Split:
    """Split FS2K pair ids: :data:`FS2K_DEV_PAIRS` held out, stratified by photo group.

    FS2K's photo groups (``photo1_*``, ``photo2_*``, ``photo3_*``) differ in source
    and sketch style, so each group gives its last pairs in sorted order, in
    proportion to its size (largest remainders round), and the development split
    looks like the whole data set rather than like one group.
    """
    ordered = sorted(set(ids))
    if len(ordered) <= FS2K_DEV_PAIRS:
        raise InputError(
            f"FS2K: only {len(ordered)} pairs; need more than {FS2K_DEV_PAIRS} "
            "to hold out a development split"
        )
    groups: dict[str, list[str]] = {}
    for pair_id in ordered:
        groups.setdefault(_photo_group(pair_id), []).append(pair_id)
    exact = {g: FS2K_DEV_PAIRS * len(members) / len(ordered) for g, members in groups.items()}
    quota = {g: int(q) for g, q in exact.items()}
    by_remainder = sorted(groups, key=lambda g: (-(exact[g] - quota[g]), g))
    for g in by_remainder[: FS2K_DEV_PAIRS - sum(quota.values())]:
        quota[g] += 1
    dev = {
        pair_id for g, members in groups.items() for pair_id in members[len(members) - quota[g] :]
    }
    return Split(tuple(i for i in ordered if i not in dev), tuple(i for i in ordered if i in dev))


def dev_celeba_identities(identities: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The held-out CelebA identities: the last :data:`CELEBA_DEV_IDENTITIES` by numeric id."""
    ordered = sorted(set(identities), key=_identity_key)
    if len(ordered) <= CELEBA_DEV_IDENTITIES:
        raise InputError(
            f"CelebA: only {len(ordered)} identities; need more than {CELEBA_DEV_IDENTITIES}"
        )
    return tuple(ordered[-CELEBA_DEV_IDENTITIES:])


def split_celeba_rows(rows: list[tuple[str, str]]) -> Split:
    """Split ``(image, identity)`` rows by whole identities; ids are image names, sorted."""
    dev_ids = set(dev_celeba_identities([identity for _, identity in rows]))
    train = sorted(image for image, identity in rows if identity not in dev_ids)
    dev = sorted(image for image, identity in rows if identity in dev_ids)
    return Split(tuple(train), tuple(dev))


def _identity_key(identity: str) -> tuple[int, str]:
    # CelebA identities are integers written as text: sort 10 after 9, not after 1
    return (int(identity), identity) if identity.isdigit() else (10**12, identity)


def load_fs2k_annotations(data_dir: str | Path) -> list[dict]:
    """FS2K's ``annotations.json`` as a list of per-pair dicts."""
    path = Path(data_dir) / FS2K_DIR / "annotations.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: FS2K annotations not found; is the data folder right?") from None


def load_celeba_rows(data_dir: str | Path) -> list[dict[str, str]]:
    """CelebA's ``identities.csv`` as a list of row dicts (attribute values as text)."""
    path = Path(data_dir) / CELEBA_DIR / "identities.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        raise InputError(
            f"{path}: CelebA identities not found; is the data folder right?"
        ) from None


def fs2k_split(data_dir: str | Path) -> Split:
    """The FS2K split of ``data_dir`` (pair ids)."""
    return _checked(split_fs2k_ids([a["id"] for a in load_fs2k_annotations(data_dir)]), "FS2K")


def celeba_split(data_dir: str | Path) -> Split:
    """The CelebA split of ``data_dir`` (image file names), by whole identities."""
    rows = [(r["image"], r["celeba_identity"]) for r in load_celeba_rows(data_dir)]
    return _checked(split_celeba_rows(rows), "CelebA")


def _checked(split: Split, what: str) -> Split:
    expected = FS2K_DEV_FINGERPRINT if what == "FS2K" else CELEBA_DEV_FINGERPRINT
    if split.fingerprint != expected:
        log.warning(
            "%s development split differs from the one facefit was developed on "
            "(fingerprint %s…); numbers are not comparable with published ones",
            what,
            split.fingerprint[:12],
        )
    return split
