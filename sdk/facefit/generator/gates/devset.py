"""The development split's faces as the generator gates use them.

:func:`load_dev_data` reads the held-out side of :mod:`facefit.datasets.splits` from a data
folder: every FS2K development pair (the photo, its artist's sketch aligned with the
photo's landmarks, its sentence, style and judge labels) and every photo of the
development CelebA identities. Each face is detected and aligned once (YuNet) and
kept at every size the gates need (the generator's, SFace's 112 and dlib's 150), so
no crop is resampled twice. Tests build the same objects from made-up arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["DevData", "FaceSet", "Fs2kDev", "load_dev_data", "spread"]


@dataclass(frozen=True)
class FaceSet:
    """Aligned real faces, one row per item, kept at several sizes.

    ``crops`` maps a size to ``(N, size, size, 3)`` uint8 crops in the 5-point
    template; :meth:`crop` gives another size by resampling the largest one.
    ``persons`` decide identification hits (two photos of one person are a match).
    """

    keys: tuple[str, ...]
    persons: tuple[str, ...]
    crops: dict[int, np.ndarray]

    def __post_init__(self) -> None:
        if len(self.keys) != len(self.persons):
            raise InputError(f"FaceSet: {len(self.keys)} keys but {len(self.persons)} persons")
        for size, array in self.crops.items():
            if array.shape[:3] != (len(self.keys), size, size):
                raise InputError(
                    f"FaceSet: crops of size {size} have shape {array.shape}, "
                    f"expected ({len(self.keys)}, {size}, {size}, 3)"
                )

    def __len__(self) -> int:
        return len(self.keys)

    def crop(self, size: int) -> np.ndarray:
        """Every face at ``size``×``size`` (stored, or resampled from the largest stored)."""
        from facefit.imaging.faces import resize_aligned

        if size in self.crops:
            return self.crops[size]
        largest = self.crops[max(self.crops)]
        out = [resize_aligned(face, size) for face in largest]
        return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)

    def subset(self, indices: Sequence[int]) -> FaceSet:
        index = list(indices)
        return FaceSet(
            tuple(self.keys[i] for i in index),
            tuple(self.persons[i] for i in index),
            {size: array[index] for size, array in self.crops.items()},
        )


@dataclass(frozen=True)
class Fs2kDev:
    """FS2K development pairs: photos and what belongs to each."""

    photos: FaceSet
    sketches: np.ndarray
    """``(N, S, S)`` uint8 grey artist sketches, aligned with their photo's landmarks."""
    styles: tuple[int, ...]
    sentences: tuple[str, ...]
    labels: tuple[dict[str, str], ...]
    """The judge's labels (:func:`facefit.attribute_judge.judge_labels`) of each pair."""

    def __post_init__(self) -> None:
        n = len(self.photos)
        sizes = (len(self.sketches), len(self.styles), len(self.sentences), len(self.labels))
        if any(k != n for k in sizes):
            raise InputError(f"Fs2kDev: {n} photos but sketches/styles/sentences/labels {sizes}")

    def __len__(self) -> int:
        return len(self.photos)


@dataclass(frozen=True)
class DevData:
    """Everything the gates read: FS2K pairs, CelebA photos and where they came from."""

    fs2k: Fs2kDev
    celeba: FaceSet
    split: dict[str, Any] = field(default_factory=dict)
    """Fingerprints and counts of the split the data came from."""


def spread(n: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over ``range(n)`` (all of them when None)."""
    if limit is None or limit >= n:
        return list(range(n))
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    return sorted({int(k) for k in np.linspace(0, n - 1, limit).round()})


def _aligned(image: np.ndarray, landmarks: np.ndarray, sizes: Iterable[int]) -> dict[int, Any]:
    from facefit.imaging.faces import align_landmarks

    return {size: align_landmarks(image, landmarks, size) for size in sizes}


def _stack(rows: list[dict[int, np.ndarray]], sizes: Sequence[int]) -> dict[int, np.ndarray]:
    return {
        s: np.stack([r[s] for r in rows]) if rows else np.zeros((0, s, s, 3), np.uint8)
        for s in sizes
    }


def _load_fs2k(data: Path, embedder: Any, sizes: Sequence[int], image_size: int, skipped: list):
    from facefit.attribute_judge import judge_labels
    from facefit.datasets.attributes import fs2k_attributes, fs2k_sentence
    from facefit.datasets.persons import load_persons
    from facefit.datasets.splits import FS2K_DIR, fs2k_split, load_fs2k_annotations
    from facefit.imaging.faces import NoFaceError, align_landmarks
    from facefit.imaging.images import load_image
    from facefit.imaging.sketch import to_grey

    records = {r["id"]: r for r in load_fs2k_annotations(data)}
    persons = load_persons(data)
    keys, people, rows, sketches, styles, sentences, labels = [], [], [], [], [], [], []
    for pair_id in fs2k_split(data).dev:
        record = records[pair_id]
        photo = load_image(data / FS2K_DIR / record["photo"])
        sketch = load_image(data / FS2K_DIR / record["sketch"])
        try:
            face = embedder.locate(photo, source=record["photo"])
        except NoFaceError:
            skipped.append(f"fs2k/{pair_id} (no face in the photo)")
            continue
        if sketch.shape[:2] != photo.shape[:2]:
            skipped.append(f"fs2k/{pair_id} (sketch size differs from the photo)")
            continue
        keys.append(pair_id)
        people.append(persons.fs2k_person(pair_id))
        rows.append(_aligned(photo, face.landmarks, sizes))
        sketches.append(align_landmarks(to_grey(sketch), face.landmarks, image_size))
        styles.append(int(record.get("style", -1)))
        sentences.append(fs2k_sentence(record, photo))
        labels.append(judge_labels(fs2k_attributes(record)))
    photos = FaceSet(tuple(keys), tuple(people), _stack(rows, sizes))
    empty = np.zeros((0, image_size, image_size), np.uint8)
    return Fs2kDev(
        photos,
        np.stack(sketches) if sketches else empty,
        tuple(styles),
        tuple(sentences),
        tuple(labels),
    )


def _load_celeba(data: Path, embedder: Any, sizes: Sequence[int], skipped: list) -> FaceSet:
    from facefit.datasets.persons import load_persons
    from facefit.datasets.splits import CELEBA_DIR, celeba_split, load_celeba_rows
    from facefit.imaging.faces import NoFaceError
    from facefit.imaging.images import load_image

    rows = {r["image"]: r for r in load_celeba_rows(data)}
    persons = load_persons(data)
    keys, people, crops = [], [], []
    for name in celeba_split(data).dev:
        image = load_image(data / CELEBA_DIR / "faces" / name)
        try:
            face = embedder.locate(image, source=name)
        except NoFaceError:
            skipped.append(f"celeba/{name} (no face)")
            continue
        keys.append(name)
        people.append(persons.celeba_person(rows[name]["celeba_identity"]))
        crops.append(_aligned(image, face.landmarks, sizes))
    return FaceSet(tuple(keys), tuple(people), _stack(crops, sizes))


def load_dev_data(
    data_dir: str | Path,
    *,
    image_size: int = 64,
    sizes: Iterable[int] = (112, 150),
    registry: Any = None,
    detector: str = "yunet",
) -> DevData:
    """Read and align the development split of ``data_dir`` (FS2K pairs and CelebA photos).

    Faces are kept at ``image_size`` (the generator's) and at each of ``sizes``.
    Items where no face is found are skipped and listed in ``split["skipped"]``.
    """
    from facefit.datasets.splits import celeba_split, dev_celeba_identities, fs2k_split
    from facefit.imaging.faces import FaceEmbedder

    data = Path(data_dir)
    if not data.is_dir():
        raise InputError(f"{data}: no such data folder; pass --data ../shared/data")
    all_sizes = sorted({int(image_size), *map(int, sizes)})
    embedder = FaceEmbedder.from_registry(registry, detector=detector)
    skipped: list[str] = []
    fs2k = _load_fs2k(data, embedder, all_sizes, int(image_size), skipped)
    celeba = _load_celeba(data, embedder, all_sizes, skipped)
    fs2k_ids, celeba_images = fs2k_split(data).dev, celeba_split(data).dev
    split = {
        "fs2k_dev_fingerprint": fs2k_split(data).fingerprint,
        "celeba_dev_fingerprint": celeba_split(data).fingerprint,
        "fs2k_dev_pairs": len(fs2k_ids),
        "celeba_dev_photos": len(celeba_images),
        "celeba_dev_identities": len(dev_celeba_identities(data)),
        "fs2k_used": len(fs2k),
        "celeba_used": len(celeba),
        "skipped": skipped,
    }
    log.info(
        "development data: %d FS2K pairs, %d CelebA photos (%d skipped)",
        len(fs2k),
        len(celeba),
        len(skipped),
    )
    return DevData(fs2k, celeba, split)
