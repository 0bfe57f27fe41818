"""Persons: which FS2K pairs and CelebA identities show the same human being.

FS2K labels every photo as its own identity, but many of its photos show the same
celebrity, and some of them are CelebA identities as well. Splitting by photo id
leaks people from the development split into training, and scoring by photo id
calls a hit on another photo of the right person a miss. This module holds the
committed grouping (``persons.json`` beside it, made by ``scripts/group_persons.py``):

    >>> from facefit.datasets.persons import load_persons
    >>> persons = load_persons(data_dir)        # refuses a data folder it was not made from
    >>> persons.fs2k_person("photo1_0001")      # → "fs2k/photo1_0001" or the person's first item
    >>> persons.celeba_person("1234")

A person's id is its smallest member key (``fs2k/<pair id>`` or ``celeba/<identity>``),
so ids are readable and stable. The grouping links two items only where two
independent recognizers, SFace and dlib, both say "same person"
(:func:`group_persons`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from facefit.errors import InputError
from facefit.files import sha256_file

__all__ = [
    "PERSONS_FILE",
    "Grouping",
    "Persons",
    "group_persons",
    "input_fingerprints",
    "load_persons",
]

PERSONS_FILE = Path(__file__).with_name("persons.json")

SFACE_SAME = 0.5
"""SFace cosine above which two photos may be one person (OpenCV's 1:1 threshold is 0.363)."""
DLIB_SAME = 0.93
"""dlib cosine (unit descriptors) above which two photos may be one person: about
dlib's own 0.6 Euclidean rule on raw descriptors, made stricter."""
CELEBA_MIN_PHOTOS = 2
"""How many of a CelebA identity's photos must pass both rules against an FS2K photo."""

_INDEX_FILES = ("fs2k-train/annotations.json", "celeba-subset/identities.csv")


def fs2k_key(pair_id: str) -> str:
    return f"fs2k/{pair_id}"


def celeba_key(identity: str) -> str:
    return f"celeba/{identity}"


@dataclass(frozen=True)
class Grouping:
    """The result of :func:`group_persons`."""

    persons: dict[str, str]
    """item key → person id (its smallest member key)."""
    links: list[tuple[str, str, float, float]]
    """``(a, b, sface cosine, dlib cosine)`` of every link, sorted."""
    no_face: list[str]
    """FS2K items whose photo had no face for one of the recognizers (kept alone)."""


class _UnionFind:
    def __init__(self, keys: Sequence[str]) -> None:
        self.parent = {k: k for k in keys}

    def find(self, key: str) -> str:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_persons(
    fs2k_ids: Sequence[str],
    fs2k_vectors: tuple[np.ndarray, np.ndarray],
    celeba_identities: Sequence[str],
    celeba_vectors: tuple[np.ndarray, np.ndarray],
    *,
    sface_same: float = SFACE_SAME,
    dlib_same: float = DLIB_SAME,
    celeba_min_photos: int = CELEBA_MIN_PHOTOS,
) -> Grouping:
    """Group FS2K photos and CelebA identities into persons.

    ``fs2k_vectors`` is ``(sface, dlib)``, unit rows in the order of ``fs2k_ids``
    (NaN rows: no face). ``celeba_vectors`` likewise, one row per CelebA *photo*,
    labelled by ``celeba_identities``. Two FS2K photos are linked where both
    cosines pass; a CelebA identity is linked to an FS2K photo where at least
    ``celeba_min_photos`` of its photos pass both against it. Persons are the
    connected components. Deterministic: no randomness, ties cannot change the
    components.
    """
    f_s, f_d = (np.nan_to_num(v, nan=0.0) for v in fs2k_vectors)
    no_face = sorted(
        fs2k_key(i)
        for i, bad in zip(
            fs2k_ids, np.isnan(fs2k_vectors[0][:, 0]) | np.isnan(fs2k_vectors[1][:, 0])
        )
        if bad
    )
    keys = [fs2k_key(i) for i in fs2k_ids]
    identities = sorted(set(celeba_identities))
    groups = _UnionFind(keys + [celeba_key(i) for i in identities])
    links: list[tuple[str, str, float, float]] = []

    s_sim, d_sim = f_s @ f_s.T, f_d @ f_d.T
    for a, b in zip(*np.nonzero(np.triu((s_sim > sface_same) & (d_sim > dlib_same), k=1))):
        links.append((keys[a], keys[b], float(s_sim[a, b]), float(d_sim[a, b])))

    c_s, c_d = (np.nan_to_num(v, nan=0.0) for v in celeba_vectors)
    labels = np.asarray(celeba_identities)
    for identity in identities:
        rows = labels == identity
        s, d = c_s[rows] @ f_s.T, c_d[rows] @ f_d.T
        passing = ((s > sface_same) & (d > dlib_same)).sum(axis=0)
        for j in np.nonzero(passing >= celeba_min_photos)[0]:
            both = (s[:, j] > sface_same) & (d[:, j] > dlib_same)
            links.append(
                (keys[j], celeba_key(identity), float(s[both, j].max()), float(d[both, j].max()))
            )

    links.sort()
    for a, b, _, _ in links:
        groups.union(a, b)
    persons = {key: groups.find(key) for key in sorted(groups.parent)}
    return Grouping(persons, links, no_face)


def input_fingerprints(data_dir: str | Path, *, with_images: bool = False) -> dict[str, str]:
    """sha256 of the data files a grouping was made from.

    Always the two index files; with ``with_images`` also one sha256 over every
    photo's relative path and content (slow: reads ~170 MB).
    """
    data_dir = Path(data_dir)
    out = {}
    for name in _INDEX_FILES:
        path = data_dir / name
        if not path.exists():
            raise InputError(f"{path}: not found; is {data_dir} the shared data folder?")
        out[name] = sha256_file(path)
    if with_images:
        digest = hashlib.sha256()
        for folder in ("fs2k-train", "celeba-subset/faces"):
            for path in sorted((data_dir / folder).rglob("*")):
                if path.is_file() and path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                    digest.update(f"{path.relative_to(data_dir)}\0{sha256_file(path)}\n".encode())
        out["images"] = digest.hexdigest()
    return out


@dataclass(frozen=True)
class Persons:
    """The committed grouping: item → person."""

    persons: dict[str, str]
    inputs: dict[str, str]

    def fs2k_person(self, pair_id: str) -> str:
        """The person of an FS2K pair (its own key if the grouping does not list it)."""
        return self.persons.get(fs2k_key(pair_id), fs2k_key(pair_id))

    def celeba_person(self, identity: str) -> str:
        """The person of a CelebA identity."""
        return self.persons.get(celeba_key(identity), celeba_key(identity))

    def members(self, person: str) -> list[str]:
        """Every item key of one person, sorted."""
        return sorted(k for k, p in self.persons.items() if p == person)


@cache
def _read(path: Path) -> Persons:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path}: person grouping not found; run scripts/group_persons.py"
        ) from None
    return Persons(dict(payload["persons"]), dict(payload["inputs"]))


def load_persons(data_dir: str | Path | None = None, *, path: str | Path | None = None) -> Persons:
    """The committed grouping; with ``data_dir``, refused unless made from that data.

    The check compares the sha256 of the data's index files with those recorded
    when the grouping was made and raises :class:`InputError` naming what differs.
    """
    persons = _read(Path(path) if path is not None else PERSONS_FILE)
    if data_dir is not None:
        found = input_fingerprints(data_dir)
        changed = [name for name, sha in found.items() if persons.inputs.get(name) != sha]
        if changed:
            raise InputError(
                f"{data_dir}: {', '.join(changed)} differ from the data the person grouping "
                f"was made from (sha256 mismatch); regroup with scripts/group_persons.py "
                f"--data {data_dir} before training or evaluating on it"
            )
    return persons
