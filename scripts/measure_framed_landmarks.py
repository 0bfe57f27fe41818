"""Measure :data:`facefit.imaging.faces.FRAMED_LANDMARKS` on the FS2K training sketches.

The fallback landmarks for framed drawings are the mean YuNet landmarks (score ≥
0.6, the largest face) over the FS2K training sketches of :mod:`facefit.datasets.splits`,
as offsets from the image centre in units of the shorter side. Prints the array
to paste into ``faces.py``, its spread, and the split fingerprint it was measured
under (``FRAMED_LANDMARKS_SPLIT``).

    python scripts/measure_framed_landmarks.py --data ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facefit import Registry
from facefit.datasets.splits import FS2K_DIR, fs2k_split, load_fs2k_annotations
from facefit.imaging.faces import largest
from facefit.imaging.images import load_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    detector = Registry.load().create("face_detector", "yunet")
    records = {r["id"]: r for r in load_fs2k_annotations(args.data)}
    split = fs2k_split(args.data)
    offsets = []
    for pair_id in split.train:
        sketch = load_image(args.data / FS2K_DIR / records[pair_id]["sketch"])
        found = detector.detect(sketch)
        if not found:
            continue
        height, width = sketch.shape[:2]
        centre = np.float32([width / 2.0, height / 2.0])
        offsets.append((largest(found).landmarks - centre) / min(height, width))
    offsets = np.stack(offsets)
    mean = offsets.mean(axis=0)
    print(f"detected on {len(offsets)} of {len(split.train)} training sketches")
    print("FRAMED_LANDMARKS = np.array(\n    [")
    for x, y in mean:
        print(f"        [{x:.4f}, {y:.4f}],")
    print("    ],\n    dtype=np.float32,\n)")
    print(
        f"spread (mean distance to the mean): {np.linalg.norm(offsets - mean, axis=2).mean():.3f}"
    )
    print(f'FRAMED_LANDMARKS_SPLIT = "{split.fingerprint}"')


if __name__ == "__main__":
    main()
