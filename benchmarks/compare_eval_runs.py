"""Compare one mode of two `facefit eval` runs probe by probe (rank-1, exact McNemar).

Both runs must have evaluated the same probes (same benchmarks, probe sets and
split). For each benchmark · probe set it prints rank-1 of run A and run B at photo
level and, where the benchmark declares persons, at person level, with the probes
only one of them ranks first and the exact two-sided McNemar p-value.

    python benchmarks/compare_eval_runs.py out/eval-matcher-pair out/eval-matcher-person \\
        --mode matcher --names "by pair" "by person"

``--mode-b`` compares two modes, of one run or of two:

    python benchmarks/compare_eval_runs.py out/eval-fused-dev out/eval-fused-dev \\
        --mode fused --mode-b matcher --names fused matcher
"""

from __future__ import annotations

import argparse
import json
from math import comb
from pathlib import Path


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def read_ranks(run: Path, mode: str) -> dict[tuple[str, str], dict[str, tuple]]:
    """(benchmark, probe set) → probe → (photo rank, person rank or None)."""
    out: dict[tuple[str, str], dict[str, tuple]] = {}
    for line in (run / "probes.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["mode"] != mode or row.get("error"):
            continue
        key = (row["benchmark"], row["probe_set"])
        out.setdefault(key, {})[row["probe"]] = (row["rank"], row.get("person_rank"))
    return out


def compare(a: dict, b: dict, level: int) -> tuple[float, float, int, int, float] | None:
    probes = sorted(set(a) & set(b))
    if not probes or any(a[p][level] is None or b[p][level] is None for p in probes):
        return None
    hit_a = {p for p in probes if a[p][level] == 1}
    hit_b = {p for p in probes if b[p][level] == 1}
    only_a, only_b = len(hit_a - hit_b), len(hit_b - hit_a)
    n = len(probes)
    return len(hit_a) / n, len(hit_b) / n, only_a, only_b, mcnemar_p(only_a, only_b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--mode", default="matcher")
    parser.add_argument("--mode-b", default=None, help="Mode of run B (default: --mode).")
    parser.add_argument("--names", nargs=2, default=["A", "B"])
    args = parser.parse_args()
    a, b = read_ranks(args.run_a, args.mode), read_ranks(args.run_b, args.mode_b or args.mode)
    name_a, name_b = args.names
    print(
        f"| benchmark · probe set | level | {name_a} | {name_b} | only {name_a} / only {name_b} | p |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for key in sorted(set(a) & set(b)):
        for level, label in ((0, "photo"), (1, "person")):
            row = compare(a[key], b[key], level)
            if row is None:
                continue
            ra, rb, oa, ob, p = row
            print(
                f"| {key[0]} · {key[1]} | {label} | {ra:.1%} | {rb:.1%} | {oa} / {ob} | {p:.2g} |"
            )


if __name__ == "__main__":
    main()
