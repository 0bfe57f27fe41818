"""Build the README demo's bundled data (sdk/facefit/demo_data/) from ../shared/data.

Only FS2K (MIT) pairs of the development split (facefit.datasets.splits) are used, so the demo
never shows a face the generator trained on; no CelebA image is touched.

- ``probes/sketch_<id>.png``: the artist's sketch, as drawn (FS2K framing), reduced to 160 px
  wide, grey; ``probes.csv``: id, sketch, text (the FS2K attributes as a sentence).
- ``gallery/<id>.jpg``: every probe's photo plus distractor photos of other
  development pairs, as aligned 112×112 crops (the 5-point template), JPEG.
- ``SOURCES.md``: which FS2K file each came from, and the credit.

    python scripts/build_demo_data.py --data ../shared/data [--probes 3 --distractors 21]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from facefit import Registry
from facefit.datasets.attributes import fs2k_sentence
from facefit.datasets.splits import fs2k_split, load_fs2k_annotations
from facefit.imaging.faces import FaceEmbedder
from facefit.imaging.images import load_image

OUT = Path(__file__).resolve().parents[1] / "sdk" / "facefit" / "demo_data"
SKETCH_WIDTH = 160


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--probes", type=int, default=3)
    parser.add_argument("--distractors", type=int, default=21)
    args = parser.parse_args()

    folder = args.data / "fs2k-train"
    records = {r["id"]: r for r in load_fs2k_annotations(args.data)}
    dev = list(fs2k_split(args.data).dev)
    embedder = FaceEmbedder.from_registry(Registry.load())
    rng = np.random.default_rng(7)
    order = [dev[i] for i in rng.permutation(len(dev))]

    (OUT / "probes").mkdir(parents=True, exist_ok=True)
    (OUT / "gallery").mkdir(parents=True, exist_ok=True)
    probes, gallery, sources = [], [], []
    for pair_id in order:
        if len(probes) == args.probes and len(gallery) == args.probes + args.distractors:
            break
        record = records[pair_id]
        photo = load_image(folder / record["photo"])
        try:
            crop = embedder.align(photo, size=112, source=pair_id)
        except Exception as exc:  # no face in the photo: not usable as a gallery face
            print(f"skip {pair_id}: {exc}")
            continue
        is_probe = (
            len(probes) < args.probes and record.get("frontal_face") == 0
        )  # 0 is frontal (facefit.datasets.attributes)
        if not is_probe and len(gallery) >= args.probes + args.distractors - (
            args.probes - len(probes)
        ):
            continue
        Image.fromarray(crop).save(OUT / "gallery" / f"{pair_id}.jpg", quality=88)
        gallery.append(pair_id)
        sources.append(f"| gallery/{pair_id}.jpg | fs2k-train/{record['photo']} (aligned crop) |")
        if is_probe:
            sketch = Image.fromarray(load_image(folder / record["sketch"])).convert("L")
            height = round(sketch.height * SKETCH_WIDTH / sketch.width)
            sketch.resize((SKETCH_WIDTH, height), Image.Resampling.LANCZOS).save(
                OUT / "probes" / f"sketch_{pair_id}.png", optimize=True
            )
            probes.append((pair_id, fs2k_sentence(record, photo)))
            sources.append(
                f"| probes/sketch_{pair_id}.png | fs2k-train/{record['sketch']} (reduced) |"
            )
    with open(OUT / "probes.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "sketch", "text"])
        for pair_id, text in probes:
            writer.writerow([pair_id, f"probes/sketch_{pair_id}.png", text])
    (OUT / "gallery.json").write_text(
        json.dumps({"identities": {g: f"gallery/{g}.jpg" for g in sorted(gallery)}}, indent=2)
        + "\n"
    )
    (OUT / "SOURCES.md").write_text(
        '# Demo data\n\nDerived from FS2K (Fan et al., "FS2K: Facial Sketch Synthesis", '
        "https://github.com/DengPingFan/FS2K, MIT licence): artist sketches reduced in size "
        "and photos cut to aligned face crops. All pairs come from facefit's development "
        "split (facefit.datasets.splits), which training never sees. Built by "
        "scripts/build_demo_data.py.\n\n| file | from |\n|---|---|\n" + "\n".join(sources) + "\n"
    )
    print(f"{OUT}: {len(probes)} probes, {len(gallery)} gallery identities")


if __name__ == "__main__":
    main()
