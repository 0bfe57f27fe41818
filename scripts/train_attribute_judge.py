"""Train the attribute judge that grades generator gate 2 (gender and hair colour).

    python scripts/train_attribute_judge.py --data ../shared/data [--force]

Training: real photos of the training side of ``facefit.datasets.splits`` only — the FS2K
training pairs' photos (``gender``, ``hair_color``) and the CelebA training photos
with attributes (``Male``, ``Black_Hair``, ``Blond_Hair``, ``Brown_Hair``), each also
mirrored. No generated face and no development photo is used to fit it or to pick
its L2 weight (cross-validated over training persons). Every face is aligned by
YuNet, resampled to the generator's 64 px and then to dlib's 150 px, and described
by dlib. Checking: the development photos (FS2K pairs; CelebA photos with
attributes), the same way. Writes ``sdk/facefit/attribute_judge_dlib.json``.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CROP_SIZE = 64  # the generator's resolution: real photos are judged as sharp as generated faces


def _fs2k(data: Path, locate, ids, persons):
    from facefit.attribute_judge import judge_labels
    from facefit.datasets.attributes import fs2k_attributes
    from facefit.datasets.splits import FS2K_DIR, load_fs2k_annotations
    from facefit.imaging.faces import align_landmarks
    from facefit.imaging.images import load_image

    records = {r["id"]: r for r in load_fs2k_annotations(data)}
    for pair_id in ids:
        record = records[pair_id]
        photo = load_image(data / FS2K_DIR / record["photo"])
        landmarks = locate(photo, record["photo"])
        if landmarks is None:
            continue
        labels = judge_labels(fs2k_attributes(record))
        yield align_landmarks(photo, landmarks, CROP_SIZE), labels, persons.fs2k_person(pair_id)


def _celeba(data: Path, locate, images, persons):
    from facefit.attribute_judge import judge_labels
    from facefit.datasets.attributes import celeba_attributes
    from facefit.datasets.splits import CELEBA_DIR, load_celeba_rows
    from facefit.imaging.faces import align_landmarks
    from facefit.imaging.images import load_image

    rows = {r["image"]: r for r in load_celeba_rows(data)}
    for name in images:
        row = rows[name]
        if str(row.get("has_attrs", "0")).strip() != "1":
            continue
        image = load_image(data / CELEBA_DIR / "faces" / name)
        landmarks = locate(image, name)
        if landmarks is None:
            continue
        labels = judge_labels(celeba_attributes(row))
        yield (
            align_landmarks(image, landmarks, CROP_SIZE),
            labels,
            persons.celeba_person(row["celeba_identity"]),
        )


def _collect(items, desc: str):
    from tqdm import tqdm

    crops, labels, groups = [], [], []
    for crop, label, group in tqdm(items, desc=desc, unit="photo"):
        if label:
            crops.append(crop)
            labels.append(label)
            groups.append(group)
    return crops, labels, groups


def _embed(encoder, crops: list[np.ndarray]) -> np.ndarray:
    from facefit.attribute_judge import judge_crops

    faces = judge_crops(np.stack(crops), CROP_SIZE, encoder.input_size)
    return np.concatenate(
        [encoder.embed_aligned(faces[i : i + 64]) for i in range(0, len(faces), 64)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=None, help="default: the shipped judge file")
    parser.add_argument("--no-flip", action="store_true", help="do not add mirrored photos")
    parser.add_argument("--force", action="store_true", help="overwrite an existing judge")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from facefit.attribute_judge import JUDGE_PATH, accuracy, train_judge
    from facefit.datasets.persons import load_persons
    from facefit.datasets.splits import celeba_split, fs2k_split, load_celeba_rows, refuse_dev
    from facefit.imaging.faces import FaceEmbedder, NoFaceError
    from facefit.registry import Registry

    out = Path(args.out) if args.out else JUDGE_PATH
    if out.exists() and not args.force:
        sys.exit(f"{out} exists; pass --force to replace it")
    data = Path(args.data)
    registry = Registry.load()
    embedder = FaceEmbedder.from_registry(registry)
    encoder = registry.create("face_encoder", "dlib")
    persons = load_persons(data)

    def locate(image, source):
        try:
            return embedder.locate(image, source=source).landmarks
        except NoFaceError:
            return None

    fs2k, celeba = fs2k_split(data), celeba_split(data)
    rows = {r["image"]: r for r in load_celeba_rows(data)}
    refuse_dev(
        data,
        fs2k_ids=fs2k.train,
        celeba_identities=sorted({rows[n]["celeba_identity"] for n in celeba.train}),
        what="attribute judge training",
    )
    a = _collect(_fs2k(data, locate, fs2k.train, persons), "FS2K training photos")
    b = _collect(_celeba(data, locate, celeba.train, persons), "CelebA training photos")
    crops, labels, groups = a[0] + b[0], a[1] + b[1], a[2] + b[2]
    if not args.no_flip:
        crops += [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        labels, groups = labels * 2, groups * 2
    vectors = _embed(encoder, crops)

    meta = {
        "file": "sdk/facefit/attribute_judge_dlib.json",
        "trained_on": f"real training-split photos only: {len(a[0])} FS2K, {len(b[0])} CelebA "
        f"with attributes{'' if args.no_flip else ', each also mirrored'}",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} CPU",
        "command": "python scripts/train_attribute_judge.py "
        + " ".join(shlex.quote(x) for x in sys.argv[1:]),
        "fs2k_dev_fingerprint": fs2k.fingerprint,
        "celeba_dev_fingerprint": celeba.fingerprint,
    }
    judge = train_judge(vectors, labels, groups, encoder="dlib", crop_size=CROP_SIZE, meta=meta)

    dev_a = _collect(_fs2k(data, locate, fs2k.dev, persons), "FS2K dev photos")
    dev_b = _collect(_celeba(data, locate, celeba.dev, persons), "CelebA dev photos")
    checks = {}
    for name, (dev_crops, dev_labels, _) in (("fs2k_dev", dev_a), ("celeba_dev", dev_b)):
        predicted = judge.predict(_embed(encoder, dev_crops)) if dev_crops else {}
        checks[name] = {
            head: {
                "accuracy": accuracy(predicted.get(head, []), [x.get(head) for x in dev_labels]),
                "n": sum(head in x for x in dev_labels),
            }
            for head in judge.heads
        }
    judge.meta["dev_accuracy"] = checks
    for head, h in judge.heads.items():
        print(f"{head}: l2 {h.l2:g}, cross-validated accuracy on training persons {h.cv_accuracy}")
    print("accuracy on the real development photos:", checks)
    judge.save(out)
    print(out)


if __name__ == "__main__":
    main()
