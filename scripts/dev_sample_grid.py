"""Sample grid of the default generator on FS2K development pairs (held out from training).

    python scripts/dev_sample_grid.py --data ../shared/data --out docs/images/generator_dev_samples.png

Rows: FS2K development pairs (every 40th, so each photo group appears). Columns:
artist sketch | 8×8 copy of the true photo | generated from sketch + text |
generated from sketch + text + 8×8 | generated from text alone | true photo
(aligned). One candidate each, DDPM 25 steps, guidance 3, seed 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="docs/images/generator_dev_samples.png")
    parser.add_argument("--every", type=int, default=40)
    args = parser.parse_args()

    import cv2
    from PIL import Image

    from facefit.config import PipelineConfig
    from facefit.datasets.attributes import fs2k_sentence
    from facefit.datasets.splits import FS2K_DIR, fs2k_split, load_fs2k_annotations
    from facefit.evaluation.evidence import low_quality_copy
    from facefit.imaging.faces import FaceEmbedder
    from facefit.imaging.images import load_image
    from facefit.pipeline import Pipeline
    from facefit.registry import Registry
    from facefit.types import Evidence

    data = Path(args.data)
    records = {r["id"]: r for r in load_fs2k_annotations(data)}
    ids = fs2k_split(data).dev[:: args.every]
    registry = Registry.load()
    config = PipelineConfig().replace_settings(rounds=1, candidates=1, seed=0)
    pipeline = Pipeline(config, registry=registry)
    aligner = FaceEmbedder.from_registry(registry)
    size = pipeline.components.model.image_size if hasattr(pipeline.components, "model") else 64
    rows = []
    for pair_id in ids:
        record = records[pair_id]
        photo = load_image(data / FS2K_DIR / record["photo"])
        sketch = load_image(data / FS2K_DIR / record["sketch"])
        text = fs2k_sentence(record, photo)
        true = aligner.align(photo, size=size, source=record["photo"])
        lq8 = low_quality_copy(true, 8)
        made = [
            pipeline.run(evidence).candidates[0].image
            for evidence in (
                Evidence(sketch=sketch, text=text),
                Evidence(sketch=sketch, text=text, lq=lq8),
                Evidence(text=text),
            )
        ]
        drawing = cv2.resize(
            np.asarray(Image.fromarray(sketch).convert("RGB")), (size, size), cv2.INTER_AREA
        )
        big_lq = cv2.resize(lq8, (size, size), interpolation=cv2.INTER_NEAREST)
        rows.append(np.concatenate([drawing, big_lq, *made, true], axis=1))
        print(pair_id, text)
    grid = np.concatenate(rows, axis=0)
    grid = np.repeat(np.repeat(grid, 2, axis=0), 2, axis=1)
    Image.fromarray(grid).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
