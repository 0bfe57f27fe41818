"""Make the package's shipped sketch matcher from a trained matcher and its development eval.

    python scripts/ship_matcher.py out/matcher-person-balanced-v3 \
        out/eval-matcher-person-balanced-v3 --sface out/eval-matcher-pair-v3 --force

Writes ``sdk/facefit/matcher/default/`` (``tail.safetensors``: the fine-tuned layers in
float16; ``config.json``; ``README.md``, the model card) with
:func:`facefit.matcher.shipped.pack_shipped`. The card's development figures come from
the ``results.json`` of ``facefit eval DATA --split dev --large-gallery --modes
direct,matcher --matcher-path MATCHER_DIR``: SFace (``direct``) against the matcher,
photo and person level, and by group (gender, apparent skin tone) on the large gallery
at person level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GROUP_BENCHMARK = "fs2k-dev-large-gallery"
ENCODERS = {"direct": "SFace", "matcher": "this matcher"}


def dev_block(results: dict[str, Any]) -> dict[str, Any]:
    """The model card's development figures from an eval run's ``results.json``."""
    ok = [r for r in results["results"] if r.get("status") == "ok"]
    by_key = {(r["benchmark"], r["mode"], r["probe_set"]): r for r in ok}
    fingerprint = next(
        (b["split"].get("fingerprint") for b in results["benchmarks"] if b.get("split")), None
    )
    rank1 = []
    for (bench, mode, probe_set), r in by_key.items():
        other = by_key.get((bench, "matcher", probe_set))
        if mode != "direct" or other is None:
            continue
        levels = [(x["rank1"], x.get("person", x)["rank1"]) for x in (r, other)]
        rank1.append(
            {
                "benchmark": bench,
                "probe_set": probe_set,
                "probes": r["probes"],
                "sface": levels[0],
                "matcher": levels[1],
            }
        )
    groups, gaps = [], []
    for mode in ("direct", "matcher"):
        r = by_key.get((GROUP_BENCHMARK, mode, "sketch"))
        if r is None:
            continue
        person = r.get("person", r)
        for name, block in sorted(person.get("group_fairness", {}).items()):
            for value, rates in block["error_rates"]["by_value"].items():
                cell = person["groups"].get(name, {}).get(value, {})
                groups.append(
                    {
                        "encoder": ENCODERS[mode],
                        "group": name,
                        "value": value,
                        "probes": rates["probes"],
                        "rank1": cell.get("rank1"),
                        "fmr": rates["fmr"],
                        "fnmr": rates["fnmr"],
                    }
                )
            gap = block["rank1_gap"]
            if gap.get("gap") is not None:
                gaps.append(
                    {
                        "encoder": ENCODERS[mode],
                        "group": name,
                        **{k: gap[k] for k in ("gap", "ci", "best", "worst")},
                    }
                )
    return {
        "scoring": "person",
        "fingerprint": fingerprint,
        "date": results.get("date"),
        "command": results.get("command"),
        "rank1": rank1,
        "groups_gallery": "the 1,058-photo gallery",
        "groups": groups,
        "gaps": gaps,
    }


def main() -> None:
    from facefit.matcher.shipped import PACKAGE_DIR, pack_shipped

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("matcher", type=Path, help="the folder train-matcher wrote")
    parser.add_argument("eval", type=Path, help="the folder facefit eval wrote for it")
    parser.add_argument(
        "--sface", type=Path, help="an eval folder with the direct (SFace) rows, if EVAL lacks them"
    )
    parser.add_argument("--out", type=Path, default=PACKAGE_DIR)
    parser.add_argument("--force", action="store_true", help="replace a shipped matcher")
    args = parser.parse_args()
    results = json.loads((args.eval / "results.json").read_text(encoding="utf-8"))
    if args.sface is not None:
        # SFace's rows from another run of the same split (direct mode does not change)
        other = json.loads((args.sface / "results.json").read_text(encoding="utf-8"))
        direct = [r for r in other["results"] if r["mode"] == "direct"]
        results["results"] = [r for r in results["results"] if r["mode"] != "direct"] + direct
    out = pack_shipped(args.matcher, args.out, dev=dev_block(results), force=args.force)
    size = (out / "tail.safetensors").stat().st_size
    print(f"shipped matcher written to {out} (tail.safetensors {size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
