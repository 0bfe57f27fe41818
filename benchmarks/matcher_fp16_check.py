"""How much the shipped float16 tail changes the matcher it was made from.

    python benchmarks/matcher_fp16_check.py out/matcher-person-balanced-v3 \\
        --data ../shared/data --cache out/matcher-cache --out benchmarks/results/matcher_shipped_fp16.json

Builds the package's shipped matcher (:func:`facefit.matcher.shipped.install_shipped`)
into a temporary folder and embeds the photos and sketches of the matcher's validation
slice (FS2K training pairs of held-out persons, aligned as training aligns them, from
the crop cache) with it and with the float32 matcher directory it was packed from. Reports the lowest and median cosine
between the two embeddings of each crop, the largest relative change of an embedding,
and whether sketch → photo ranks on the matcher's validation slice change. Never reads
the development split.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from facefit.datasets.persons import load_persons
    from facefit.imaging.faces import FaceEmbedder
    from facefit.matcher.data import align_pairs, fs2k_training_pairs
    from facefit.matcher.files import read_config
    from facefit.matcher.shipped import install_shipped, shipped_config
    from facefit.matcher.train import sketch_ranks, split_validation
    from facefit.registry import Registry
    from facefit_plugins.face_encoders.matcher import SketchMatcherEncoder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("matcher", type=Path, help="the float32 matcher the package was made from")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=None, help="train-matcher's crop cache")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    registry = Registry.load()
    embedder = FaceEmbedder.from_registry(registry, detector="yunet")
    pairs = fs2k_training_pairs(args.data, load_persons(args.data))
    data = align_pairs(pairs, embedder, cache_dir=args.cache)
    settings = read_config(args.matcher)["settings"]
    _, val = split_validation(data, settings["val_pairs"], settings["seed"])
    crops = np.concatenate([data.photos[val], data.sketches[val]])
    persons = [data.pairs[i].label for i in val]
    with tempfile.TemporaryDirectory() as tmp:
        built, _ = install_shipped(Path(tmp) / "sketch-matcher")
        shipped = SketchMatcherEncoder(weights=built, threads=1)
        full = SketchMatcherEncoder(weights=args.matcher, threads=1)
        a, b = full.embed_aligned(crops), shipped.embed_aligned(crops)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    relative = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
    n = len(val)
    ranks = [sketch_ranks(e[n:], e[:n], persons) for e in (a, b)]  # sketches → photos
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()}",
        "matcher": str(args.matcher),
        "tail_sha256": shipped_config()["shipped"]["tail_sha256"],
        "crops": len(crops),
        "cosine_min": float(cosine.min()),
        "cosine_median": float(np.median(cosine)),
        "relative_change_max": float(relative.max()),
        "val_pairs": len(val),
        "val_rank_changes": int((ranks[0] != ranks[1]).sum()),
        "val_rank1": [float((r == 1).mean()) for r in ranks],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
