"""The development split: data that training never sees and evaluation grades on.

The split is a rule fixed here, made **by person**, not by photo: FS2K shows many
celebrities in several photos, under separate ids, and some of them are CelebA
identities too (:mod:`facefit.datasets.persons` holds the committed grouping). A person is
wholly on one side:

1. FS2K: the persons of the demo's pairs (:data:`DEMO_PAIRS`, so the demo shows
   held-out faces) come first, then every other person in the order of
   ``sha256(SPLIT_SEED + person)``; a person is taken while each FS2K photo group
   (``photo1_*``, ``photo2_*``, ``photo3_*``: sources and sketch styles differ)
   stays within its share of :data:`FS2K_DEV_PAIRS`, in proportion to its size.
2. CelebA: every identity of a development person is held out, every identity of a
   person with FS2K training pairs is training data, and the last of the rest by
   numeric id fill the development side to :data:`CELEBA_DEV_IDENTITIES` identities
   (all their photos).
3. Calibration: FS2K training persons that have no CelebA photos, in the same person
   order, until :data:`FS2K_CALIBRATION_PAIRS` pairs (photo-group shares as above).
   No model trains on them (:func:`fs2k_training` leaves them out); they are the
   held-out slice on which score fusion and calibration are fitted, so that neither
   ever touches the development split.

Training code and the evaluation harness both import this module; nothing else may
decide what is held out.

    >>> from facefit.datasets.splits import fs2k_split, celeba_split
    >>> fs2k = fs2k_split(data_dir)        # .train / .dev: lists of pair ids
    >>> celeba = celeba_split(data_dir)    # .train / .dev: lists of image file names
    >>> dev_persons(data_dir)              # every person held out
    >>> fs2k_training(data_dir)            # what models train on: train minus calibration
    >>> fs2k_calibration(data_dir)         # what fusion and calibration are fitted on

:func:`check_fingerprints` compares the split found on disk with the one this
project was developed on, so a changed data folder is noticed instead of silently
moving images between training and evaluation; :func:`refuse_dev` is the guard
training code calls on what it is about to train on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from facefit.errors import InputError

log = logging.getLogger(__name__)

FS2K_DEV_PAIRS = 200
"""At most this many FS2K pairs are held out (whole persons)."""
FS2K_CALIBRATION_PAIRS = 100
"""At most this many FS2K training pairs form the calibration slice (whole persons)."""
CELEBA_DEV_IDENTITIES = 40
"""How many CelebA identities are held out, with all their photos."""
SPLIT_SEED = "facefit-dev-split-2"
"""Salt of the person order (changing it moves people between the sides)."""
DEMO_PAIRS = (
    "photo1_0724",
    "photo1_0726",
    "photo1_0729",
    "photo1_0731",
    "photo1_0745",
    "photo1_0746",
    "photo1_0753",
    "photo1_0771",
    "photo1_0783",
    "photo1_0785",
    "photo1_1325",
    "photo1_1358",
    "photo1_1375",
    "photo1_1380",
    "photo2_0092",
    "photo2_0093",
    "photo2_0099",
    "photo3_0412",
    "photo3_0417",
    "photo3_0418",
    "photo3_0422",
    "photo3_0435",
    "photo3_0461",
    "photo3_0473",
)
"""The demo's pairs (sdk/facefit/demo_data): their persons are held out first, so the
demo shows only held-out faces."""

FS2K_DIR = "fs2k-train"
CELEBA_DIR = "celeba-subset"

# sha256 of "\n".join(dev ids) for ../shared/data as it was when the split was fixed
FS2K_DEV_FINGERPRINT = "ea6ea0d9ac601bf0e2bbac34739cb7ad22c5480614b24076a4395281c1a7d49e"
FS2K_CALIBRATION_FINGERPRINT = "0405bd7fe86d"  # first 12 hex digits: same data check
CELEBA_DEV_FINGERPRINT = "4d1b4337b34343dc9448e96495116551289a11090374ecabedfb3a20cf2d2fb1"


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


@dataclass(frozen=True)
class PersonSplit:
    """Both data sets split by person (see the module docstring)."""

    fs2k: Split
    """FS2K pair ids."""
    celeba_identities: Split
    """CelebA identities."""
    dev_persons: frozenset[str]
    """Every person with an item on the development side."""
    calibration: tuple[str, ...] = ()
    """FS2K pair ids of the calibration slice (a subset of ``fs2k.train``)."""
    calibration_persons: frozenset[str] = frozenset()
    """The persons of the calibration slice."""


def _person_order(person: str) -> str:
    return hashlib.sha256(f"{SPLIT_SEED}\0{person}".encode()).hexdigest()


def split_by_person(
    fs2k_ids: Sequence[str],
    celeba_identities: Sequence[str],
    fs2k_person: Callable[[str], str],
    celeba_person: Callable[[str], str],
    *,
    seed_pairs: Sequence[str] = DEMO_PAIRS,
) -> PersonSplit:
    """Split FS2K pairs and CelebA identities so that no person is on both sides.

    ``fs2k_person``/``celeba_person`` map an id to its person. See the module
    docstring for the rule; it is deterministic and depends on no order of input.
    """
    ordered = sorted(set(fs2k_ids))
    if len(ordered) <= FS2K_DEV_PAIRS:
        raise InputError(
            f"FS2K: only {len(ordered)} pairs; need more than {FS2K_DEV_PAIRS} "
            "to hold out a development split"
        )
    pairs_of: dict[str, list[str]] = {}
    for pair_id in ordered:
        pairs_of.setdefault(fs2k_person(pair_id), []).append(pair_id)
    seeds = [fs2k_person(i) for i in seed_pairs if i in set(ordered)]
    rest = sorted(set(pairs_of) - set(seeds), key=_person_order)
    dev_persons = _take_persons([*seeds, *rest], pairs_of, _group_quotas(ordered, FS2K_DEV_PAIRS))
    fs2k_dev = {i for i in ordered if fs2k_person(i) in dev_persons}
    fs2k = Split(
        tuple(i for i in ordered if i not in fs2k_dev), tuple(i for i in ordered if i in fs2k_dev)
    )

    identities = sorted(set(celeba_identities), key=_identity_key)
    train_persons = {fs2k_person(i) for i in fs2k.train}
    forced = [i for i in identities if celeba_person(i) in dev_persons]
    free = [
        i
        for i in identities
        if celeba_person(i) not in dev_persons and celeba_person(i) not in train_persons
    ]
    if len(free) + len(forced) <= CELEBA_DEV_IDENTITIES:
        raise InputError(
            f"CelebA: only {len(free) + len(forced)} identities can be held out; "
            f"need more than {CELEBA_DEV_IDENTITIES}"
        )
    fill = free[len(free) - max(0, CELEBA_DEV_IDENTITIES - len(forced)) :]
    celeba_dev = set(forced) | set(fill)
    dev_persons |= {celeba_person(i) for i in celeba_dev}
    celeba = Split(
        tuple(i for i in identities if i not in celeba_dev),
        tuple(i for i in identities if i in celeba_dev),
    )
    with_celeba = {celeba_person(i) for i in identities}
    candidates = [p for p in rest if p not in dev_persons and p not in with_celeba]
    train_ids = [i for i in ordered if i not in fs2k_dev]
    held = _take_persons(candidates, pairs_of, _group_quotas(train_ids, FS2K_CALIBRATION_PAIRS))
    calibration = tuple(i for i in fs2k.train if fs2k_person(i) in held)
    return PersonSplit(fs2k, celeba, frozenset(dev_persons), calibration, frozenset(held))


def _take_persons(
    order: Sequence[str], pairs_of: dict[str, list[str]], quota: dict[str, int]
) -> set[str]:
    """Persons taken in ``order`` while every photo group stays within its quota."""
    taken_persons: set[str] = set()
    taken: dict[str, int] = dict.fromkeys(quota, 0)
    for person in dict.fromkeys(order):
        need: dict[str, int] = {}
        for pair_id in pairs_of[person]:
            need[_photo_group(pair_id)] = need.get(_photo_group(pair_id), 0) + 1
        if all(taken.get(g, 0) + n <= quota.get(g, 0) for g, n in need.items()):
            taken_persons.add(person)
            for g, n in need.items():
                taken[g] += n
    return taken_persons


def _photo_group(pair_id: str) -> str:
    # FS2K ids are "photoN_XXXX": N is the photo group (source and sketch style differ by group)
    return pair_id.split("_", 1)[0]


def _group_quotas(ordered: Sequence[str], total: int) -> dict[str, int]:
    """Held-out pairs per FS2K photo group, in proportion to its size (largest remainders),
    so that a held-out side looks like the whole data set rather than like one group."""
    groups: dict[str, int] = {}
    for pair_id in ordered:
        groups[_photo_group(pair_id)] = groups.get(_photo_group(pair_id), 0) + 1
    exact = {g: total * n / len(ordered) for g, n in groups.items()}
    quota = {g: int(q) for g, q in exact.items()}
    by_remainder = sorted(groups, key=lambda g: (-(exact[g] - quota[g]), g))
    for g in by_remainder[: total - sum(quota.values())]:
        quota[g] += 1
    return quota


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


def person_split(data_dir: str | Path) -> PersonSplit:
    """The split of ``data_dir`` by person (refused if the grouping was made from other data)."""
    return _person_split(str(Path(data_dir).resolve()))


@cache
def _person_split(data_dir: str) -> PersonSplit:
    from facefit.datasets.persons import load_persons

    persons = load_persons(data_dir)
    fs2k_ids = [a["id"] for a in load_fs2k_annotations(data_dir)]
    identities = [r["celeba_identity"] for r in load_celeba_rows(data_dir)]
    return split_by_person(fs2k_ids, identities, persons.fs2k_person, persons.celeba_person)


def fs2k_split(data_dir: str | Path) -> Split:
    """The FS2K split of ``data_dir`` (pair ids)."""
    return _checked(person_split(data_dir).fs2k, "FS2K")


def fs2k_calibration(data_dir: str | Path) -> tuple[str, ...]:
    """FS2K pair ids of the calibration slice: training pairs that no model trains on."""
    return person_split(data_dir).calibration


def fs2k_training(data_dir: str | Path) -> tuple[str, ...]:
    """FS2K pair ids that models may train on: the training side minus calibration."""
    split = person_split(data_dir)
    held = set(split.calibration)
    return tuple(i for i in fs2k_split(data_dir).train if i not in held)


def celeba_split(data_dir: str | Path) -> Split:
    """The CelebA split of ``data_dir`` (image file names), by whole identities."""
    dev = set(person_split(data_dir).celeba_identities.dev)
    rows = load_celeba_rows(data_dir)
    train = sorted(r["image"] for r in rows if r["celeba_identity"] not in dev)
    held = sorted(r["image"] for r in rows if r["celeba_identity"] in dev)
    return _checked(Split(tuple(train), tuple(held)), "CelebA")


def dev_celeba_identities(data_dir: str | Path) -> tuple[str, ...]:
    """The held-out CelebA identities of ``data_dir``."""
    return person_split(data_dir).celeba_identities.dev


def dev_persons(data_dir: str | Path) -> frozenset[str]:
    """Every person held out (ids of :mod:`facefit.datasets.persons`)."""
    return person_split(data_dir).dev_persons


def refuse_dev(data_dir: str | Path, *, fs2k_ids=(), celeba_identities=(), what: str) -> None:
    """Raise :class:`InputError` if any item is, or shows, a held-out person.

    The guard training code calls on what it is about to train on: an item is
    refused when its person is a development person or a calibration person
    (including another photo of someone held out).
    """
    from facefit.datasets.persons import load_persons

    persons = load_persons(data_dir)
    split = person_split(data_dir)
    held = split.dev_persons | split.calibration_persons
    bad = [f"fs2k/{i}" for i in fs2k_ids if persons.fs2k_person(i) in held]
    bad += [f"celeba/{i}" for i in celeba_identities if persons.celeba_person(i) in held]
    if bad:
        raise InputError(
            f"{what}: {len(bad)} item(s) show development-split or calibration persons "
            f"({', '.join(bad[:5])}{', …' if len(bad) > 5 else ''}); "
            "training must never see them (facefit.datasets.splits)"
        )


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
