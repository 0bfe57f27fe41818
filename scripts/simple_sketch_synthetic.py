"""A stand-in synthetic sketch set: facefit's simple sketch of CelebA training photos.

    python scripts/simple_sketch_synthetic.py --data ../shared/data --out out/synth-simple

Writes an FS2K-format folder (``photo/``, ``sketch/``, ``annotations.json`` with
``identity``) of up to ``--per-identity`` aligned 112×112 photos per CelebA
*training* identity (facefit.datasets.splits) and their ``simple-sketch`` drawings, for
``facefit train-matcher --synthetic``. It is not CLIP4Sketch: no generator is
involved; it measures whether more identities with XDoG-style sketches help.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="out/synth-simple")
    parser.add_argument("--per-identity", type=int, default=3)
    args = parser.parse_args()

    from PIL import Image

    from facefit.datasets.splits import CELEBA_DIR, celeba_split, load_celeba_rows
    from facefit.imaging.faces import FaceEmbedder, NoFaceError
    from facefit.imaging.images import load_image
    from facefit.registry import Registry

    data, out = Path(args.data), Path(args.out)
    train = set(celeba_split(data).train)
    by_identity: dict[str, list[str]] = {}
    for row in load_celeba_rows(data):
        if row["image"] in train:
            by_identity.setdefault(row["celeba_identity"], []).append(row["image"])
    registry = Registry.load()
    embedder = FaceEmbedder.from_registry(registry)
    extractor = registry.create_sketch_extractor("simple-sketch")
    (out / "photo").mkdir(parents=True, exist_ok=True)
    (out / "sketch").mkdir(exist_ok=True)
    records = []
    for identity, images in sorted(by_identity.items()):
        for name in sorted(images)[: args.per_identity]:
            try:
                crop = embedder.align(load_image(data / CELEBA_DIR / "faces" / name), size=112)
            except NoFaceError:
                continue
            stem = Path(name).stem
            Image.fromarray(crop).save(out / "photo" / f"{stem}.png")
            Image.fromarray(extractor.extract(crop)).save(out / "sketch" / f"{stem}.png")
            records.append(
                {
                    "id": f"celeba_{stem}",
                    "photo": f"photo/{stem}.png",
                    "sketch": f"sketch/{stem}.png",
                    "identity": identity,
                    "style": -1,
                }
            )
    (out / "annotations.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    print(f"{out}: {len(records)} sketches of {len(by_identity)} identities")


if __name__ == "__main__":
    main()
