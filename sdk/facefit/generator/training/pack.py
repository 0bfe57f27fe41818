"""Building the training pack from the shared data: ``facefit train pack``.

FS2K training pairs give photos, artist sketches (aligned with the photo's
landmarks: the pairs are drawn over the photos) and attribute sentences; CelebA
training identities give photos, simple sketches extracted from them, and a
sentence where the attributes are known. The development split of
:mod:`facefit.datasets.splits` is left out before anything is read, and
:func:`facefit.datasets.splits.refuse_dev` checks that no item shows a development person.
Identities are persons (:mod:`facefit.datasets.persons`), so that photos of one person in
FS2K and CelebA can be each other's reference faces. Faces are detected and
aligned by :class:`facefit.imaging.faces.FaceEmbedder` (YuNet + SFace by default);
images where no face is found are skipped and counted in the pack's metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.generator.conditions import SKETCH_STYLES
from facefit.generator.training.data import TrainingPack

log = logging.getLogger(__name__)

SKETCH_EXTRACTION_SIZE = 128
"""CelebA sketches are drawn on a crop of this size, then reduced (finer lines)."""


@dataclass
class _Item:
    photo: np.ndarray  # aligned, image_size
    crop: np.ndarray  # aligned, encoder input size
    sketch: np.ndarray  # grey, image_size
    real_sketch: bool
    style: int  # FS2K sketch style 0/1/2; -1: not an artist's sketch
    sentence: str | None
    identity: str
    source: str


def _fs2k_items(data_dir: Path, embedder: Any, size: int, limit: int | None, skipped: list):
    from facefit.datasets.attributes import fs2k_sentence
    from facefit.datasets.persons import load_persons
    from facefit.datasets.splits import FS2K_DIR, fs2k_training, load_fs2k_annotations, refuse_dev
    from facefit.imaging.faces import NoFaceError, align_landmarks
    from facefit.imaging.images import load_image
    from facefit.imaging.sketch import normalize_sketch, to_grey

    folder = data_dir / FS2K_DIR
    records = {r["id"]: r for r in load_fs2k_annotations(data_dir)}
    ids = fs2k_training(data_dir)[:limit]
    refuse_dev(data_dir, fs2k_ids=ids, what="training pack")
    persons = load_persons(data_dir)
    for pair_id in ids:
        record = records[pair_id]
        photo = load_image(folder / record["photo"])
        try:
            face = embedder.locate(photo, source=record["photo"])
        except NoFaceError:
            skipped.append(f"fs2k/{pair_id}")
            continue
        sketch = load_image(folder / record["sketch"])
        if sketch.shape[:2] != photo.shape[:2]:
            skipped.append(f"fs2k/{pair_id} (sketch size differs from photo)")
            continue
        sketch64 = align_landmarks(to_grey(sketch), face.landmarks, size)
        yield _Item(
            photo=align_landmarks(photo, face.landmarks, size),
            crop=face.crop,
            sketch=normalize_sketch(sketch64),
            real_sketch=True,
            style=_fs2k_style(record),
            sentence=fs2k_sentence(record, photo),
            identity=persons.fs2k_person(pair_id),
            source="fs2k",
        )


def _fs2k_style(record: dict) -> int:
    """FS2K's sketch style (0, 1 or 2), or -1 when the annotation lacks a valid one."""
    try:
        style = int(record.get("style", -1))
    except (TypeError, ValueError):
        return -1
    return style if 0 <= style < SKETCH_STYLES else -1


def _celeba_items(
    data_dir: Path, embedder: Any, extractor: Any, size: int, limit: int | None, skipped: list
):
    import cv2

    from facefit.datasets.attributes import celeba_sentence
    from facefit.datasets.persons import load_persons
    from facefit.datasets.splits import CELEBA_DIR, celeba_split, load_celeba_rows, refuse_dev
    from facefit.imaging.faces import NoFaceError, align_landmarks
    from facefit.imaging.images import load_image

    rows = {r["image"]: r for r in load_celeba_rows(data_dir)}
    images = celeba_split(data_dir).train[:limit]
    refuse_dev(
        data_dir,
        celeba_identities=sorted({rows[n]["celeba_identity"] for n in images}),
        what="training pack",
    )
    persons = load_persons(data_dir)
    for name in images:
        row = rows[name]
        image = load_image(data_dir / CELEBA_DIR / "faces" / name)
        try:
            face = embedder.locate(image, source=name)
        except NoFaceError:
            skipped.append(f"celeba/{name}")
            continue
        large = align_landmarks(image, face.landmarks, SKETCH_EXTRACTION_SIZE)
        drawing = cv2.resize(extractor.extract(large), (size, size), interpolation=cv2.INTER_AREA)
        has_attrs = str(row.get("has_attrs", "0")).strip() == "1"
        yield _Item(
            photo=align_landmarks(image, face.landmarks, size),
            crop=face.crop,
            sketch=drawing,
            real_sketch=False,
            style=-1,
            sentence=celeba_sentence(row) if has_attrs else None,
            identity=persons.celeba_person(row["celeba_identity"]),
            source="celeba",
        )


def _progress(items: Iterator[_Item], total: int, desc: str, enabled: bool) -> Iterator[_Item]:
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="image", disable=not enabled)


def build_pack(
    data_dir: str | Path,
    out: str | Path,
    *,
    image_size: int = 64,
    registry: Any = None,
    face_detector: str = "yunet",
    face_encoder: str = "sface",
    text_encoder: str = "minilm",
    sketch_extractor: str = "simple-sketch",
    sources: tuple[str, ...] = ("fs2k", "celeba"),
    limit: int | None = None,
    progress: bool = True,
) -> TrainingPack:
    """Build and save the training pack; ``limit`` caps the items read per source."""
    from facefit.datasets.splits import (
        celeba_split,
        fingerprint,
        fs2k_calibration,
        fs2k_split,
        fs2k_training,
    )
    from facefit.imaging.faces import FaceEmbedder
    from facefit.registry import Registry

    data_dir = Path(data_dir)
    unknown = set(sources) - {"fs2k", "celeba"}
    if unknown or not sources:
        raise InputError(f"training pack sources must be fs2k and/or celeba, got {sources}")
    registry = registry or Registry.load()
    embedder = FaceEmbedder.from_registry(registry, detector=face_detector, encoder=face_encoder)
    texts = registry.create("text_encoder", text_encoder)
    skipped: list[str] = []
    items: list[_Item] = []
    meta: dict[str, Any] = {"image_size": image_size}
    if "fs2k" in sources:
        split = fs2k_split(data_dir)
        total = len(fs2k_training(data_dir)[:limit])
        found = _fs2k_items(data_dir, embedder, image_size, limit, skipped)
        items += list(_progress(found, total, "FS2K pairs", progress))
        meta["fs2k_dev_fingerprint"] = split.fingerprint
        meta["fs2k_calibration_fingerprint"] = fingerprint(fs2k_calibration(data_dir))
    if "celeba" in sources:
        extractor = registry.create("sketch_extractor", sketch_extractor)
        split = celeba_split(data_dir)
        total = len(split.train[:limit])
        found = _celeba_items(data_dir, embedder, extractor, image_size, limit, skipped)
        items += list(_progress(found, total, "CelebA photos", progress))
        meta["celeba_dev_fingerprint"] = split.fingerprint
    if not items:
        raise InputError(f"{data_dir}: no usable faces found for the training pack")

    crops = np.stack([item.crop for item in items])
    embeddings = embedder.embed_aligned(crops)
    embeddings_flip = embedder.embed_aligned(np.ascontiguousarray(crops[:, :, ::-1]))
    sentences = sorted({item.sentence for item in items if item.sentence})
    row = {s: i for i, s in enumerate(sentences)}
    encoded = texts.encode(sentences) if sentences else None
    if encoded is not None:
        tokens = (encoded.tokens * encoded.mask[..., None]).astype(np.float16)
    else:
        tokens = np.zeros((0, texts.num_tokens, texts.dim), np.float16)

    meta.update(
        face_encoder=face_encoder,
        face_encoder_version=getattr(embedder.encoder, "version", ""),
        text_encoder=text_encoder,
        sketch_extractor=None,  # real sketches are used as drawn (normalized)
        celeba_sketches=sketch_extractor,
        skipped=len(skipped),
        skipped_items=skipped[:50],
        counts={s: sum(item.source == s for item in items) for s in sources},
    )
    pack = TrainingPack(
        photos=np.stack([item.photo for item in items]),
        sketches=np.stack([item.sketch for item in items]),
        real_sketch=np.array([item.real_sketch for item in items]),
        styles=np.array([item.style for item in items], np.int8),
        embeddings=embeddings.astype(np.float16),
        embeddings_flip=embeddings_flip.astype(np.float16),
        text_index=np.array([row.get(item.sentence, -1) for item in items], np.int32),
        text_tokens=tokens,
        sentences=np.array(sentences, dtype=str),
        identities=np.array([item.identity for item in items], dtype=str),
        sources=np.array([item.source for item in items], dtype=str),
        meta=meta,
    )
    path = pack.save(out)
    log.info("training pack %s: %d items (%d skipped)", path, len(pack), len(skipped))
    return pack
