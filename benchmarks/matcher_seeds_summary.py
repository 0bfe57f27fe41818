"""Issue 23: matcher (a) by pair against other class recipes, several seeds, probe by probe.

Reads trained matchers (``config.json``) and their development-split ``facefit eval``
runs (``probes.jsonl``, ``results.json``) and summarises them for
``benchmarks/results/matcher_seeds.md``:

- ``sets``: rank-1 per seed, mean and sd for every recipe, at photo and person level, on
  fs2k-dev (200 photos), fs2k-dev-large-gallery (1,058 photos) and CelebA dev photo →
  photo; and, under ``vs_pair``, each recipe against by pair: an exact McNemar test per
  seed on the same probes, and a pooled test where each probe gets d = mean over the
  seeds of (recipe hit − by-pair hit), with the mean of d, a 95% bootstrap interval
  over probes (10,000 rounds) and a two-sided sign-flip permutation p (100,000 flips).
  Each comparison draws from its own ``numpy.random.default_rng(0)``, so adding a recipe
  leaves the others' intervals and p-values unchanged.
- ``models``: chosen epoch, validation figures, training command and ONNX hash.
- ``groups_large_gallery_person_level``: person-level rank-1 by gender and apparent skin
  tone and FMR by group on the 1,058-photo gallery, per eval run (issue 21).

Run names: seed 0 is ``out/matcher-RECIPE-v3`` evaluated in ``out/eval-matcher-RECIPE-v3``,
seed S > 0 adds ``-sS``. Train and evaluate each (nice 19, one thread) with

    facefit train-matcher --data ../shared/data --cache out/matcher-cache --threads 1 \\
        --no-progress --seed S --classes RECIPE --out MODEL
    facefit eval ../shared/data --split dev --large-gallery --modes matcher \\
        --probe-sets sketch,photo --matcher sketch-matcher --matcher-path MODEL \\
        --out EVAL --contact-sheet 0 --no-progress

then, from the repository root (``--update`` replaces the computed keys of the results
JSON and keeps its hand-written ones: what, date, machine, commands):

    python benchmarks/matcher_seeds_summary.py --recipes pair person pair-masked \\
        --seeds 0 1 2 --group-extra out/eval-matcher-person-balanced-v3 \\
        --update benchmarks/results/matcher_seeds.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_eval_runs import mcnemar_p

# (benchmark, probe set); CelebA has no person level (one photo per person in the gallery).
SETS = [
    ("fs2k-dev", "sketch", ("photo", "person")),
    ("fs2k-dev-large-gallery", "sketch", ("photo", "person")),
    ("celeba-dev", "photo", ("photo",)),
]
REFERENCE = "pair"
FLIPS = 100_000
BOOTS = 10_000


def run_dirs(runs: Path, recipe: str, seed: int) -> tuple[Path, Path]:
    """(model folder, eval folder) of one recipe and seed."""
    tail = "" if seed == 0 else f"-s{seed}"
    return runs / f"matcher-{recipe}-v3{tail}", runs / f"eval-matcher-{recipe}-v3{tail}"


def read_hits(run: Path) -> dict[tuple[str, str], dict[str, tuple[bool, bool | None]]]:
    """(benchmark, probe set) → probe → (photo-level hit, person-level hit or None)."""
    out: dict[tuple[str, str], dict[str, tuple[bool, bool | None]]] = {}
    for line in (run / "probes.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["mode"] != "matcher" or row.get("error"):
            continue
        person = row.get("person_rank")
        out.setdefault((row["benchmark"], row["probe_set"]), {})[row["probe"]] = (
            row["rank"] == 1,
            None if person is None else person == 1,
        )
    return out


def model_row(model: Path, run: Path) -> dict:
    cfg = json.loads((model / "config.json").read_text(encoding="utf-8"))
    best = cfg["metrics"]["val_best"]
    return {
        "model": str(model),
        "eval": str(run),
        "onnx_sha256": cfg["onnx_sha256"],
        "best_epoch": cfg["training"]["best_epoch"],
        "val_rank1": best.get("val_rank1"),
        "val_mrr": best.get("val_mrr"),
        "val_pairs": cfg["data"]["val_pairs"],
        "train_pairs": cfg["data"]["train_pairs"],
        "seconds": cfg["training"]["seconds"],
        "command": cfg["training"]["command"],
    }


def pooled(d: np.ndarray, rng: np.random.Generator) -> dict:
    """Mean of the per-probe differences, bootstrap interval, sign-flip p."""
    obs = d.mean()
    flips = rng.choice([-1.0, 1.0], size=(FLIPS, len(d)))
    p = float((np.abs((flips * d).mean(1)) >= abs(obs) - 1e-12).mean())
    boots = d[rng.integers(0, len(d), size=(BOOTS, len(d)))].mean(1)
    return {
        "mean_diff_minus_pair": float(obs),
        "ci95_bootstrap_probes": [
            float(np.quantile(boots, 0.025)),
            float(np.quantile(boots, 0.975)),
        ],
        "sign_flip_p": p,
    }


def summarize_sets(hits: dict, recipes: list[str], seeds: list[int]) -> dict:
    # The hit vectors, on the probes every run answered.
    cells = []
    for bench, probe_set, levels in SETS:
        key = (bench, probe_set)
        probes = sorted(set.intersection(*[set(h[key]) for h in hits.values()]))
        for li, level in enumerate(levels):
            m = {r: np.array([h[key][p][li] for p in probes], float) for r, h in hits.items()}
            cells.append((f"{bench}·{probe_set}·{level}", len(probes), m))
    sets: dict[str, dict] = {}
    for name, n, m in cells:
        row: dict = {"probes": n}
        for recipe in recipes:
            per = [float(m[(recipe, s)].mean()) for s in seeds]
            row[recipe] = {
                "per_seed": per,
                "mean": float(np.mean(per)),
                "sd": float(np.std(per, ddof=1)) if len(per) > 1 else 0.0,
            }
        row["vs_pair"] = {}
        sets[name] = row
    for recipe in recipes:
        if recipe == REFERENCE:
            continue
        rng = np.random.default_rng(0)  # one stream per comparison, sets in a fixed order
        for name, _, m in cells:
            per_seed, only_ref, only_other = [], 0, 0
            for s in seeds:
                a, b = m[(REFERENCE, s)], m[(recipe, s)]
                op, oq = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
                only_ref, only_other = only_ref + op, only_other + oq
                per_seed.append(
                    {"seed": s, "only_pair": op, "only_variant": oq, "p": mcnemar_p(op, oq)}
                )
            d = np.mean([m[(recipe, s)] - m[(REFERENCE, s)] for s in seeds], axis=0)
            summary = pooled(d, rng)
            summary.update(only_pair_sum=only_ref, only_variant_sum=only_other)
            sets[name]["vs_pair"][recipe] = {"per_seed_mcnemar": per_seed, "pooled": summary}
    return sets


def group_row(run: Path, bench: str = "fs2k-dev-large-gallery") -> dict:
    """Person-level rank-1 and FMR by gender and skin tone of one eval run's matcher rows."""
    res = json.loads((run / "results.json").read_text(encoding="utf-8"))
    rows = [x for x in res["results"] if x["mode"] == "matcher"]
    x = next(x for x in rows if x["benchmark"] == bench and x["probe_set"] == "sketch")
    p = x["person"]
    groups, fairness = p["groups"], p["group_fairness"]
    row = {
        "run": str(run),
        "weights": res["settings"].get("matcher_options", {}).get("weights"),
        "photo_rank1": x["rank1"],
        "person_rank1": p["rank1"],
    }
    for att in ("gender", "skin_tone"):
        row[att] = {
            k: {"probes": v["probes"], "rank1": v["rank1"], "ci95": v.get("rank1_ci95")}
            for k, v in groups[att].items()
        }
        gap = fairness[att]["rank1_gap"]
        row[att + "_gap"] = {k: gap[k] for k in ("gap", "ci", "best", "worst")}
        rates = fairness[att]["error_rates"]["by_value"]
        row[att + "_fmr"] = {k: v["fmr"] for k, v in rates.items()}
        row[att + "_fnmr"] = {k: v["fnmr"] for k, v in rates.items()}
        fmr = [v for v in row[att + "_fmr"].values() if v]
        row[att + "_fmr_ratio"] = max(fmr) / min(fmr)
        row[att + "_below_overall_pts"] = {
            k: 100 * (p["rank1"] - v["rank1"]) for k, v in groups[att].items()
        }
    celeba = [y for y in rows if y["benchmark"] == "celeba-dev"]
    row["celeba_photo_rank1"] = celeba[0]["rank1"] if celeba else None
    small = next(y for y in rows if y["benchmark"] == "fs2k-dev" and y["probe_set"] == "sketch")
    row["dev200_photo_rank1"], row["dev200_person_rank1"] = small["rank1"], small["person"]["rank1"]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", nargs="+", default=["pair", "person", "pair-masked"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument(
        "--runs", type=Path, default=Path("out"), help="folder of the model and eval runs"
    )
    ap.add_argument(
        "--group-extra", nargs="*", type=Path, default=[], help="more eval runs for the group table"
    )
    ap.add_argument("--update", type=Path, help="results JSON whose computed keys to replace")
    args = ap.parse_args(argv)
    if REFERENCE not in args.recipes:
        ap.error(f"--recipes must include {REFERENCE!r}, the reference")

    hits, models, evals = {}, {}, []
    for recipe in args.recipes:
        for s in args.seeds:
            model, run = run_dirs(args.runs, recipe, s)
            models[f"{recipe}/s{s}"] = model_row(model, run)
            hits[(recipe, s)] = read_hits(run)
            evals.append(run)
    computed = {
        "sets": summarize_sets(hits, args.recipes, args.seeds),
        "models": models,
        "groups_large_gallery_person_level": [group_row(r) for r in evals + args.group_extra],
    }
    if args.update:
        out = json.loads(args.update.read_text(encoding="utf-8")) if args.update.exists() else {}
        out.update(computed)
        args.update.write_text(
            json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    else:
        json.dump(computed, sys.stdout, indent=1, ensure_ascii=False)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
