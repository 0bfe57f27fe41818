"""Tables for benchmarks/results/fusion_dev.md from `facefit eval --modes fused` runs.

    python benchmarks/fusion_tables.py out/eval-fused-dev

The fused mode on the sketch alone ranks exactly as the sketch matcher does (one source:
a monotone map of its cosine), so the `sketch` row is the matcher baseline, and the
McNemar tests compare each fused combination with it probe by probe (same pairs)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_eval_runs import mcnemar_p

for run in sys.argv[1:]:
    run = Path(run)
    d = json.loads((run / "results.json").read_text(encoding="utf-8"))
    print(f"\n`{run.name}`\n")
    print(
        "| gallery | evidence | rank-1 photo | rank-1 person | rank-5 person | top-1 ECE (person) | mean top-1 probability / accuracy (person) | top-1 ECE (photo) | s/probe |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in d["results"]:
        if r["status"] != "ok":
            continue
        c, cp = r["calibration"]["person"], r["calibration"]["photo"]
        print(
            f"| {r['benchmark']} | {r['probe_set']} | {100 * r['rank1']:.1f}% | {100 * r['person']['rank1']:.1f}% | {100 * r['person']['rank5']:.1f}% | {100 * c['ece']:.1f}% | {100 * c['mean_confidence']:.1f}% / {100 * c['accuracy']:.1f}% | {100 * cp['ece']:.1f}% | {r['seconds_per_probe']:.3f} |"
        )
    ranks = {}
    for line in (run / "probes.jsonl").read_text().splitlines():
        row = json.loads(line)
        pair = row["probe"].split("/")[0]
        ranks.setdefault((row["benchmark"], row["probe_set"]), {})[pair] = (
            row["rank"],
            row.get("person_rank"),
        )
    print(
        "\n| gallery | fused evidence vs the sketch matcher alone | level | fused | matcher | only fused / only matcher | McNemar p |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    for (bench, pset), r in sorted(ranks.items()):
        if pset == "sketch":
            continue
        base = ranks[(bench, "sketch")]
        for level, label in ((0, "photo"), (1, "person")):
            pairs = sorted(set(r) & set(base))
            a = {p for p in pairs if r[p][level] == 1}
            b = {p for p in pairs if base[p][level] == 1}
            oa, ob = len(a - b), len(b - a)
            print(
                f"| {bench} | {pset} | {label} | {len(a) / len(pairs):.1%} | {len(b) / len(pairs):.1%} | {oa} / {ob} | {mcnemar_p(oa, ob):.2g} |"
            )
