"""Issue 21: what the development split's misses look like (a description; it chooses nothing).

    python benchmarks/matcher_fairness_dev_failures.py out/eval-matcher-person-balanced-v3 \\
        --data ../shared/data --out benchmarks/results/matcher_fairness_dev_failures.json \\
        [--sheet out/fairness]

Reads an existing ``facefit eval`` run's ``probes.jsonl`` (mode ``matcher``, benchmark
``fs2k-dev-large-gallery``, probe set ``sketch``; person-level rank) and describes each
development pair by FS2K subset, apparent skin tone (as ``facefit eval`` bins it), the
tone after grey-world balancing the photo, and the image statistics of
``matcher_fairness_analysis.py`` on the aligned crops. Reports the statistics of hits and
misses per subset × tone. Nothing here trains or picks anything: fixes are chosen on the
training split's validation slice (``matcher_fairness_analysis.py``). ``--sheet`` writes
a contact sheet of the medium-tone ``photo1`` misses and hits (dataset images: out/,
never git).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np


def _analysis():
    path = Path(__file__).with_name("matcher_fairness_analysis.py")
    spec = importlib.util.spec_from_file_location("matcher_fairness_analysis", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    from facefit.datasets.splits import FS2K_DIR, fs2k_split, load_fs2k_annotations
    from facefit.imaging.faces import FaceEmbedder
    from facefit.matcher.data import Pair, align_pairs
    from facefit.registry import Registry

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a facefit eval output folder")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("out/fairness/cache"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sheet", type=Path, default=None)
    args = parser.parse_args()
    analysis = _analysis()

    ranks = {}
    for line in (args.run / "probes.jsonl").read_text().splitlines():
        row = json.loads(line)
        if (row["mode"], row["benchmark"], row["probe_set"]) == (
            "matcher",
            "fs2k-dev-large-gallery",
            "sketch",
        ):
            ranks[row["identity"]] = row["person_rank"]
    dev = set(fs2k_split(args.data).dev)
    assert set(ranks) <= dev, "the run's probes must be development pairs"
    records = {r["id"]: r for r in load_fs2k_annotations(args.data)}
    ids = sorted(ranks)
    folder = args.data / FS2K_DIR
    pairs = [
        Pair(f"dev/{i}", i, folder / records[i]["photo"], folder / records[i]["sketch"], "dev")
        for i in ids
    ]
    embedder = FaceEmbedder.from_registry(Registry.load(), detector="yunet")
    data = align_pairs(pairs, embedder, cache_dir=args.cache)
    kept = [p.identity for p in data.pairs]
    tones, balanced, _ = analysis.skin_bins([records[i] for i in kept], folder)
    subsets = [analysis.subset_of(i) for i in kept]
    hit = np.array([ranks[i] == 1 for i in kept])
    stats = {
        **analysis.photo_stats(data.photos),
        **{f"sketch_{k}": v for k, v in analysis.sketch_stats(data.sketches).items()},
    }
    styles = np.array([float(records[i].get("style", np.nan)) for i in kept])
    frontal = np.array([float(records[i].get("frontal_face", np.nan)) for i in kept])
    stats["style1_share"] = (styles == 1).astype(float)
    stats["turned_share"] = (frontal == 1).astype(float)
    keys = [f"{t}/{s}/{'hit' if h else 'miss'}" for t, s, h in zip(tones, subsets, hit)]
    moved: dict[str, int] = {}
    for t, b, s, h in zip(tones, balanced, subsets, hit):
        key = f"{s} {'hit' if h else 'miss'}: {t} -> {b}"
        moved[key] = moved.get(key, 0) + 1
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "run": str(args.run),
        "what": "description of development-split hits and misses; chooses nothing",
        "probes": len(kept),
        "stats": analysis.summarise(stats, keys),
        "grey_world_bins": dict(sorted(moved.items())),
        "hits_by_group": analysis.hits_by_groups(
            np.where(hit, 1, 2), subsets, tones, [str(records[i].get("style")) for i in kept]
        ),
        "hits_by_grey_world_group": analysis.hits_by_groups(np.where(hit, 1, 2), subsets, balanced),
    }
    if args.sheet is not None:
        for name, want in (("miss", False), ("hit", True)):
            rows = [
                k
                for k, (t, s, h) in enumerate(zip(tones, subsets, hit))
                if (t, s, bool(h)) == ("medium", "photo1", want)
            ]
            analysis.contact_sheet(
                args.sheet / f"dev_medium_photo1_{name}.png", data.photos[rows], data.sketches[rows]
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
