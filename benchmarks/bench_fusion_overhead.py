"""What matching the evidence directly adds to a generating run's seconds per probe (CPU).

    python benchmarks/bench_fusion_overhead.py ../shared/data --limit 10 --out out/bench-fusion-overhead

Runs ``facefit eval --split dev --modes one-shot`` in this process with the loop's
direct scoring (:func:`facefit.pipeline.direct.direct_scores`, the part fusion added
to every run: the sketch matcher on the sketches, SFace on the frames, attribute
agreement on the text) timed call by call. Seconds per probe without it are the
run's less that time (fusing the scores themselves is a few array operations), so the
ratio compares the loop with and without fusion on the same probes, machine and load.
One-time costs (enrolling the sketch matcher's gallery) are reported apart.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import facefit.pipeline.loop as loop
from facefit.cli import main as cli


def timed(function, spent: list[float]):
    """``function`` that appends each call's seconds to ``spent``."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--probe-set", default="sketch+text+lq8")
    parser.add_argument("--modes", default="one-shot")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    spent: list[float] = []
    loop.direct_scores = timed(loop.direct_scores, spent)
    argv = [
        "eval",
        args.data,
        "--split",
        "dev",
        "--modes",
        args.modes,
        "--probe-sets",
        args.probe_set,
        "--limit",
        str(args.limit),
        "--contact-sheet",
        "0",
        "--no-progress",
        "--out",
        str(args.out),
    ]
    cli.main(argv, standalone_mode=False)
    results = json.loads((args.out / "results.json").read_text(encoding="utf-8"))
    rows = [r for r in results["results"] if r["status"] == "ok"]
    out = {"command": "python " + " ".join(sys.argv), "eval": "facefit " + " ".join(argv)}
    for r in rows:
        probes = r["probes"]
        total = r["seconds_per_probe"]
        direct = sum(spent) / probes
        out[f"{r['benchmark']}/{r['mode']}/{r['probe_set']}"] = {
            "probes": probes,
            "seconds_per_probe": total,
            "direct_scoring_per_probe": round(direct, 4),
            "calls": len(spent),
            "without_direct_scoring": round(total - direct, 4),
            "ratio_with_to_without": round(total / (total - direct), 4),
        }
    print(json.dumps(out, indent=1))
    (args.out / "fusion_overhead.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
