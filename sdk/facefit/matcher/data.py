"""Training pairs for the sketch matcher, and their aligned crops (cached).

Two kinds of sources, both *photo + sketch of the same person* pairs:

- the FS2K training split of a data folder (:func:`fs2k_training_pairs`): the pairs
  :func:`facefit.datasets.splits.fs2k_training` gives — the development and calibration pairs
  are never read — each with its person from :func:`facefit.datasets.persons.load_persons` (FS2K
  labels every photo as its own identity, but many show the same celebrity);
- FS2K-format folders of synthetic sketches (:func:`synthetic_pairs`), as ``facefit
  augment`` writes them: ``annotations.json`` listing ``id``, ``photo``, ``sketch`` (paths
  relative to the folder) and optionally ``identity`` (photos of one identity share a
  class) and ``aligned`` (true: the images are already aligned crops, only resized; the
  default for a folder whose ``manifest.json`` says ``facefit-augment``, since augment
  writes the generator's aligned crops). Entries that belong to the development split (an
  FS2K development id, a CelebA development identity, or a photo or ``source`` file that
  is a CelebA development image) are dropped and counted. An entry made from a photo of
  the data folder (its ``source`` or photo file is a CelebA image, or its photo is an
  FS2K pair's) takes that photo's person (:class:`SourcePersons`); the others keep their
  own identity.

A pair's :attr:`Pair.label` — its person where known, else its identity — is its class
in training, so two pairs of one person are never each other's negatives.

Faces are aligned as the evaluation harness aligns them (:func:`align_pairs`): photos by
detection (a photo without a face drops its pair), sketches by detection with the
framed-drawing fallback. Crops are cached per source in ``cache_dir``, keyed by the file
list, file sizes and times, and the detector.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.files import atomic_file

log = logging.getLogger(__name__)

__all__ = [
    "AlignedPairs",
    "Pair",
    "SourcePersons",
    "align_pairs",
    "celeba_photo_pairs",
    "default_cache_dir",
    "dev_exclusions",
    "fs2k_training_pairs",
    "source_persons",
    "synthetic_pairs",
    "trained_celeba_identities",
]

CACHE_VERSION = 1


@dataclass(frozen=True)
class Pair:
    """One photo and one sketch of the same person."""

    key: str
    """Unique item name, ``source/id``."""
    identity: str
    """The data's identity label; pairs of one identity share it."""
    photo: Path
    sketch: Path
    source: str
    aligned: bool = False
    """True when both images are already aligned square crops (resized, not detected)."""
    person: str | None = None
    """The person shown (:mod:`facefit.datasets.persons`), when known: it may span identities."""
    gender: str | None = None
    """``"female"`` or ``"male"`` where the data says (FS2K's annotation), else None:
    for group-balanced sampling and per-group validation."""
    skin_tone: str | None = None
    """Apparent skin tone of the photo, ``"light"``, ``"medium"`` or ``"dark"``
    (:data:`facefit.datasets.attributes.SKIN_TONE_BINS` of FS2K's skin sample), where
    known: for skin-tone-balanced sampling and per-group validation."""
    style: str | None = None
    """FS2K's sketch style code (``"0"``: light outline drawings, ``"1"``: shaded,
    ``"2"``: the photo2/photo3 artists' style), where the data says: for style-balanced
    sampling and per-style validation."""

    @property
    def label(self) -> str:
        """The training class: the person where known, else the identity."""
        return self.person if self.person is not None else self.identity


@dataclass
class AlignedPairs:
    """Pairs whose photo had a face, with their aligned crops."""

    pairs: list[Pair]
    photos: np.ndarray
    """``(n, S, S, 3)`` uint8 RGB photo crops."""
    sketches: np.ndarray
    """``(n, S, S, 3)`` uint8 RGB sketch crops."""
    sketch_alignment: list[str]
    """Per sketch: ``detected``, ``detected-blurred``, ``framed`` or ``aligned``."""
    skipped: list[str] = field(default_factory=list)
    """``key: reason`` for each pair left out."""

    def __len__(self) -> int:
        return len(self.pairs)

    @staticmethod
    def concat(sets: Sequence[AlignedPairs], size: int) -> AlignedPairs:
        """One :class:`AlignedPairs` holding ``sets`` in order."""
        empty = np.zeros((0, size, size, 3), np.uint8)
        return AlignedPairs(
            [p for one in sets for p in one.pairs],
            np.concatenate([empty, *(p.photos for p in sets)]),
            np.concatenate([empty, *(p.sketches for p in sets)]),
            [h for one in sets for h in one.sketch_alignment],
            [s for one in sets for s in one.skipped],
        )


def default_cache_dir() -> Path:
    """``$FACEFIT_HOME/matcher-cache`` (default ``~/.cache/facefit/matcher-cache``)."""
    from facefit.weights import cache_dir

    return cache_dir().parent / "matcher-cache"


def fs2k_training_pairs(data_dir: str | Path, persons: Any = None) -> list[Pair]:
    """The FS2K pairs models may train on (:func:`facefit.datasets.splits.fs2k_training`).

    Each pair's ``person`` comes from ``persons`` (a :class:`facefit.datasets.persons.Persons`;
    default: :func:`facefit.datasets.persons.load_persons` of ``data_dir``, which refuses data
    the grouping was not made from).
    """
    from facefit.datasets.attributes import SKIN_TONE_BINS, fs2k_attributes
    from facefit.datasets.splits import FS2K_DIR, fs2k_training, load_fs2k_annotations

    data_dir = Path(data_dir)
    if persons is None:
        from facefit.datasets.persons import load_persons

        persons = load_persons(data_dir)
    folder = data_dir / FS2K_DIR
    records = {r["id"]: r for r in load_fs2k_annotations(data_dir)}
    from facefit.imaging.images import load_image

    pairs = []
    for pair_id in fs2k_training(data_dir):
        record = records[pair_id]
        photo = folder / record["photo"]
        # the skin tone needs the photo: FS2K gives where skin was sampled, not its colour
        wanted = record.get("skin_color") is not None and photo.is_file()
        image = load_image(photo) if wanted else None
        attrs = fs2k_attributes(record, image)
        pairs.append(
            Pair(
                key=f"fs2k/{pair_id}",
                identity=f"fs2k/{pair_id}",
                photo=photo,
                sketch=folder / record["sketch"],
                source="fs2k",
                person=persons.fs2k_person(pair_id),
                gender=attrs.get("gender"),
                skin_tone=SKIN_TONE_BINS.get(attrs.get("skin_tone", "")),
                style=str(record["style"]) if record.get("style") is not None else None,
            )
        )
    return pairs


@dataclass(frozen=True)
class SourcePersons:
    """The persons of synthetic entries made from the data folder's own photos.

    ``persons`` is a :class:`facefit.datasets.persons.Persons`; ``celeba_identities`` maps a CelebA
    image file name to its identity; ``fs2k_ids`` are the FS2K pair ids.
    """

    persons: Any
    celeba_identities: Mapping[str, str] = field(default_factory=dict)
    fs2k_ids: frozenset[str] = frozenset()

    def person(self, record: Mapping[str, Any]) -> str | None:
        """The person of an annotations entry, or None when its photo is not the data's."""
        names = [Path(str(record.get(k, ""))).name for k in ("source", "photo")]
        for name in names:
            if name in self.celeba_identities:
                return self.persons.celeba_person(self.celeba_identities[name])
        for name in names:
            if Path(name).stem in self.fs2k_ids:
                return self.persons.fs2k_person(Path(name).stem)
        return None


def source_persons(data_dir: str | Path, persons: Any) -> SourcePersons:
    """:class:`SourcePersons` for the FS2K pairs and CelebA images of ``data_dir``."""
    from facefit.datasets.splits import (
        CELEBA_DIR,
        FS2K_DIR,
        load_celeba_rows,
        load_fs2k_annotations,
    )

    data_dir = Path(data_dir)
    celeba: dict[str, str] = {}
    if (data_dir / CELEBA_DIR / "identities.csv").is_file():
        celeba = {r["image"]: r["celeba_identity"] for r in load_celeba_rows(data_dir)}
    fs2k: frozenset[str] = frozenset()
    if (data_dir / FS2K_DIR / "annotations.json").is_file():
        fs2k = frozenset(r["id"] for r in load_fs2k_annotations(data_dir))
    return SourcePersons(persons, celeba, fs2k)


@dataclass(frozen=True)
class DevExclusions:
    """What synthetic data may not contain: the development split's ids and images, and
    the FS2K calibration slice's ids (an entry's ``id``, ``photo`` or ``source`` file)."""

    fs2k_ids: frozenset[str] = frozenset()
    celeba_identities: frozenset[str] = frozenset()
    celeba_images: frozenset[str] = frozenset()

    def reason(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` (an annotations entry) belongs to the development split, or None."""
        photo_name = Path(str(record.get("photo", ""))).name
        source_name = Path(str(record.get("source", ""))).name
        ids = {str(record.get("id", "")), Path(photo_name).stem, Path(source_name).stem}
        if ids & self.fs2k_ids:
            return "an FS2K development or calibration pair"
        identity = record.get("identity")
        if identity is not None:
            text = str(identity)
            variants = {text, text.rsplit(":", 1)[-1], text.rsplit("/", 1)[-1]}
            if variants & self.celeba_identities:
                return f"CelebA development identity {text}"
        for name in (photo_name, str(record.get("source", ""))):
            if name and Path(name).name in self.celeba_images:
                return f"CelebA development image {Path(name).name}"
        return None


def dev_exclusions(data_dir: str | Path | None) -> DevExclusions:
    """What ``data_dir`` holds out (whichever of FS2K and CelebA it has): the development
    split, and the FS2K calibration slice, which no model trains on either."""
    if data_dir is None:
        return DevExclusions()
    from facefit.datasets.splits import (
        CELEBA_DIR,
        FS2K_DIR,
        celeba_split,
        dev_celeba_identities,
        fs2k_calibration,
        fs2k_split,
    )

    data_dir = Path(data_dir)
    fs2k_ids: frozenset[str] = frozenset()
    identities: frozenset[str] = frozenset()
    images: frozenset[str] = frozenset()
    if (data_dir / FS2K_DIR / "annotations.json").is_file():
        fs2k_ids = frozenset(fs2k_split(data_dir).dev) | frozenset(fs2k_calibration(data_dir))
    if (data_dir / CELEBA_DIR / "identities.csv").is_file():
        identities = frozenset(dev_celeba_identities(data_dir))
        images = frozenset(celeba_split(data_dir).dev)
    return DevExclusions(fs2k_ids, identities, images)


def synthetic_pairs(
    folder: str | Path,
    exclusions: DevExclusions | None = None,
    *,
    source: str | None = None,
    persons: SourcePersons | None = None,
) -> tuple[list[Pair], list[str]]:
    """The pairs of an FS2K-format folder of synthetic sketches, and the entries dropped.

    Identities (the optional ``identity`` field) become classes named
    ``synthetic/<identity>``, shared by every synthetic folder; an entry without one is its
    own class. With ``persons``, entries made from a photo of the data folder take its
    person, and so do all entries of their identity (an identity is one class). Missing
    fields or files are an error naming the entry.
    """
    folder = Path(folder)
    path = folder / "annotations.json"
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path}: not found; a synthetic folder holds annotations.json with id, photo, "
            "sketch (as written by facefit augment)"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(records, dict):  # {"pairs": [...]} is accepted too
        records = records.get("pairs", records.get("annotations"))
    if not isinstance(records, list) or not records:
        raise InputError(f"{path}: expected a non-empty list of {{id, photo, sketch}} entries")
    source = source or folder.name
    exclusions = exclusions or DevExclusions()
    aligned_folder = _is_augment_output(folder)
    pairs, dropped, problems, seen = [], [], [], set()
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not all(k in record for k in ("id", "photo", "sketch")):
            problems.append(f"entry {index}: needs id, photo and sketch")
            continue
        key = f"{source}/{record['id']}"
        if key in seen:
            problems.append(f"entry {index}: id {record['id']!r} appears twice")
            continue
        seen.add(key)
        reason = exclusions.reason(record)
        if reason is not None:
            dropped.append(f"{key}: {reason}")
            continue
        photo, sketch = folder / str(record["photo"]), folder / str(record["sketch"])
        missing = [str(p) for p in (photo, sketch) if not p.is_file()]
        if missing:
            problems.append(f"entry {index} ({record['id']}): missing {', '.join(missing)}")
            continue
        identity = record.get("identity")
        pairs.append(
            Pair(
                key=key,
                identity=f"synthetic/{identity}" if identity is not None else key,
                photo=photo,
                sketch=sketch,
                source=source,
                aligned=bool(record.get("aligned", aligned_folder)),
                person=persons.person(record) if persons is not None else None,
            )
        )
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InputError(f"{path}: {shown}{more}")
    if dropped:
        log.warning("%s: %d entries of the development split dropped", folder, len(dropped))
    return _one_person_per_identity(pairs, folder), dropped


def _one_person_per_identity(pairs: list[Pair], folder: Path) -> list[Pair]:
    """Give every pair of an identity the person found for any of them.

    Otherwise an identity whose entries are only partly traced to the data's photos
    would be split into two classes, each the other's negative.
    """
    found: dict[str, set[str]] = {}
    for pair in pairs:
        if pair.person is not None:
            found.setdefault(pair.identity, set()).add(pair.person)
    chosen = {}
    for identity, persons in found.items():
        chosen[identity] = min(persons)
        if len(persons) > 1:
            log.warning(
                "%s: identity %s is made from photos of %d persons (%s); trained as %s",
                folder,
                identity,
                len(persons),
                ", ".join(sorted(persons)),
                chosen[identity],
            )
    return [replace(p, person=chosen.get(p.identity, p.person)) for p in pairs]


def celeba_photo_pairs(
    data_dir: str | Path, identities: int = 100, exclude: Collection[str] = ()
) -> list[Pair]:
    """Two photos each of the first ``identities`` CelebA *training* identities.

    Used to watch what fine-tuning does to photo-to-photo matching (the gallery side of
    the shared network); ``photo`` and ``sketch`` are the identity's first two images by
    file name. The development identities of :func:`facefit.datasets.splits.celeba_split` are
    never read, nor the identities in ``exclude`` (those a run trains on).
    """
    from facefit.datasets.splits import CELEBA_DIR, celeba_split, load_celeba_rows

    data_dir = Path(data_dir)
    identity_of = {r["image"]: r["celeba_identity"] for r in load_celeba_rows(data_dir)}
    images: dict[str, list[str]] = {}
    for name in celeba_split(data_dir).train:
        images.setdefault(identity_of[name], []).append(name)
    folder = data_dir / CELEBA_DIR / "faces"
    excluded = set(exclude)
    usable = [i for i in images if len(images[i]) >= 2 and i not in excluded]
    ordered = sorted(usable, key=lambda i: (len(i), i))
    return [
        Pair(f"celeba/{i}", f"celeba/{i}", folder / images[i][0], folder / images[i][1], "celeba")
        for i in ordered[:identities]
    ]


def trained_celeba_identities(
    data_dir: str | Path, persons: Any, trained: Collection[str]
) -> set[str]:
    """The CelebA identities of ``data_dir`` whose person is among the ``trained`` labels.

    The photo check must not watch people the run trains on, under any of their names.
    """
    from facefit.datasets.splits import load_celeba_rows

    if persons is None:
        return set()
    wanted = set(trained)
    identities = {r["celeba_identity"] for r in load_celeba_rows(data_dir)}
    return {i for i in identities if persons.celeba_person(i) in wanted}


def _is_augment_output(folder: Path) -> bool:
    """True for a ``facefit augment`` folder: its photos and sketches are aligned crops."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and str(manifest.get("format", "")).startswith(
        "facefit-augment"
    )


def _cache_key(pairs: Sequence[Pair], detector: str, size: int) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} {detector} {size}\n".encode())
    for pair in pairs:
        stats = []
        for path in (pair.photo, pair.sketch):
            st = os.stat(path)
            stats.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        digest.update(f"{pair.key}|{pair.identity}|{pair.aligned}|{'|'.join(stats)}\n".encode())
    return digest.hexdigest()[:24]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[:2] == (size, size):
        return image
    shrinking = image.shape[0] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interpolation)


def align_pairs(
    pairs: Sequence[Pair],
    embedder: Any,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    desc: str = "aligning",
    on_progress: Callable[[int], None] | None = None,
    sketch_fallback: bool = True,
) -> AlignedPairs:
    """Detect and align every pair as the evaluation harness does; cached in ``cache_dir``.

    ``embedder`` is a :class:`facefit.imaging.faces.FaceEmbedder` (only its detector is used).
    ``sketch_fallback=False`` treats the second image as a photo too (no face: the pair
    is skipped), for photo–photo pairs.
    """
    from tqdm import tqdm

    from facefit.imaging.faces import NoFaceError
    from facefit.imaging.images import load_image

    size = embedder.encoder.input_size
    cache_file = None
    if cache_dir is not None and pairs:
        detector = getattr(embedder.detector, "name", type(embedder.detector).__name__)
        key = _cache_key(pairs, f"{detector} fallback={sketch_fallback}", size)
        cache_file = Path(cache_dir) / f"crops-{key}.npz"
        if cache_file.is_file():
            with np.load(cache_file, allow_pickle=False) as cached:
                keys = [str(k) for k in cached["keys"]]
                by_key = {p.key: p for p in pairs}
                return AlignedPairs(
                    [by_key[k] for k in keys],
                    cached["photos"],
                    cached["sketches"],
                    [str(h) for h in cached["how"]],
                    json.loads(str(cached["skipped"])),
                )
    kept, photos, sketches, alignments, skipped = [], [], [], [], []
    for pair in tqdm(pairs, desc=desc, unit="pair", disable=not progress):
        photo, sketch = load_image(pair.photo), load_image(pair.sketch)
        if pair.aligned:
            photo_crop, sketch_crop, alignment = (
                _resize(photo, size),
                _resize(sketch, size),
                "aligned",
            )
        else:
            try:
                photo_crop = embedder.align(photo, source=str(pair.photo))
            except NoFaceError:
                skipped.append(f"{pair.key}: no face found on the photo")
                continue
            try:
                face = embedder.locate(
                    sketch, source=str(pair.sketch), sketch_fallback=sketch_fallback
                )
            except NoFaceError:
                skipped.append(f"{pair.key}: no face found on the second photo")
                continue
            sketch_crop, alignment = face.crop, face.alignment
        kept.append(pair)
        photos.append(photo_crop)
        sketches.append(sketch_crop)
        alignments.append(alignment)
        if on_progress is not None:
            on_progress(1)
    empty = np.zeros((0, size, size, 3), np.uint8)
    result = AlignedPairs(
        kept,
        np.stack(photos) if photos else empty,
        np.stack(sketches) if sketches else empty,
        alignments,
        skipped,
    )
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(cache_file) as handle:  # a file object: savez adds no suffix
            np.savez(
                handle,
                keys=np.array([p.key for p in kept]),
                photos=result.photos,
                sketches=result.sketches,
                how=np.array(alignments),  # the cache file's key
                skipped=np.array(json.dumps(skipped)),
            )
    return result
