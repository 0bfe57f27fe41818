"""How well simple sketches of photos agree with artists' sketches (FS2K development split).

For every held-out FS2K pair, the photo's simple sketch is compared with every
held-out artist sketch by :func:`facefit.imaging.sketch.sketch_similarity`. Reported: the
mean score with its own sketch and with the others, how often the own sketch scores
above the mean of the others, and sketch-to-photo rank-1/5 identification when each
artist sketch is used as a probe against the simple sketches of all photos.

    python benchmarks/sketch_fs2k.py [--data ../shared/data] [--grid docs/images/simple_sketch_fs2k.png]

Writes ``benchmarks/results/sketch_fs2k.json``. ``--grid`` also saves a small
sample (photo | simple sketch | artist sketch) for the docs: FS2K is MIT-licensed,
so its derived images may be published with credit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np

from facefit.datasets.splits import fs2k_split, load_fs2k_annotations
from facefit.imaging.images import load_image
from facefit.imaging.sketch import normalize_sketch, simple_sketch, sketch_similarity

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/sketch_fs2k.json")
    parser.add_argument("--grid", type=Path, default=None)
    args = parser.parse_args()

    dev = set(fs2k_split(args.data).dev)
    records = [r for r in load_fs2k_annotations(args.data) if r["id"] in dev]
    folder = args.data / "fs2k-train"
    start = time.perf_counter()
    drawings, sketches = [], []
    for record in records:
        drawings.append(simple_sketch(load_image(folder / record["photo"])))
        sketches.append(normalize_sketch(load_image(folder / record["sketch"])))
    extract_s = (time.perf_counter() - start) / len(records)

    n = len(records)
    scores = np.array([[sketch_similarity(d, s) for s in sketches] for d in drawings])
    own = np.diag(scores)
    others = (scores.sum(1) - own) / (n - 1)
    # probe = artist sketch (column), gallery = simple sketches of all photos (rows)
    ranks = (scores > own[None, :]).sum(0)
    result = {
        "pairs": n,
        "split": "FS2K development split (facefit.datasets.splits: 200 pairs stratified by photo group)",
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/sketch_fs2k.py",
        "mean_similarity_own_sketch": round(float(own.mean()), 4),
        "mean_similarity_other_sketches": round(float(others.mean()), 4),
        "own_above_mean_of_others": round(float((own > others).mean()), 4),
        "sketch_to_simple_sketch_rank1": round(float((ranks == 0).mean()), 4),
        "sketch_to_simple_sketch_rank5": round(float((ranks < 5).mean()), 4),
        "seconds_per_photo_extract_and_normalize": round(extract_s, 4),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if args.grid:
        save_grid(args.grid, folder, records[:4], drawings[:4], sketches[:4])


def save_grid(path: Path, folder: Path, records, drawings, sketches, height: int = 150) -> None:
    """Rows of photo | simple sketch | artist sketch, scaled to one height."""
    import cv2

    from facefit.imaging.images import save_image

    def tile(image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        h, w = image.shape[:2]
        size = (round(w * height / h), height)
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    rows = [
        np.hstack([tile(load_image(folder / r["photo"])), tile(d), tile(s)])
        for r, d, s in zip(records, drawings, sketches)
    ]
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, np.vstack(rows))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
