"""Calibration across gallery sizes: choose a size model by cross-validation on the calibration slice.

    python benchmarks/fusion_gallery_size.py out/fusion-scores/calibration.npz \
        --out benchmarks/results/fusion_gallery_size.json
    python benchmarks/fusion_gallery_size.py out/fusion-scores/calibration.npz \
        --dev out/fusion-scores/dev.npz --out benchmarks/results/fusion_gallery_size.json

Reads the score dumps of benchmarks/fusion_scores.py. A probability that an identity is
the source depends on how many identities compete; the shipped profiles are fitted at
one size (858 photos). Each calibration probe (the slice only: its 100 photos plus the
758 other training photos as distractors) is scored in galleries of
:data:`SIZES` identities: the 100 calibration photos plus a random subset of the
distractors (:func:`facefit.fusion.fit.gallery_size_columns`, seed 0; each probe and
size its own draw). Four ways to fit a profile (:mod:`facefit.fusion.fit`):

- ``large``: fixed weights fitted at 858 photos (the shipped fit);
- ``pooled``: fixed weights fitted on every size pooled;
- ``temperature``: one gallery-size factor on all weights, fitted on every size;
- ``per-source``: a gallery-size slope per weight, fitted on every size.

Choice, declared before any development number was computed: the way with the lowest
cross-validated negative log probability of the true person (5 folds by person, as
before), averaged over the four gallery sizes and summed over the five evidence
combinations. Per-size held-out ECE and mean top-1 probability are reported beside it.
The choice is written to ``--out`` first; ``--dev`` then applies each way (refitted on
the whole slice) to the development probes at 200 and 1,058 photos, for the report only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fusion_calibration_gallery import (
    FOLDS,
    evaluate,
    load,
    person_index,
    usable,
)

from facefit.evaluation.calibration import expected_calibration_error
from facefit.fusion.fit import FitSample, fit_profile, gallery_size_columns
from facefit.fusion.model import probabilities

SIZES = (100, 200, 400, 858)
WAYS = ("large", "pooled", "temperature", "per-source")
SEED = 0


def sample(meta: dict, data: dict, r: int, columns: np.ndarray) -> FitSample:
    """The probe ``r`` against the identities ``columns``."""
    sources = [s for s in data if s not in ("truth", "encoders")]
    persons = meta["persons"]
    truth = persons[data["truth"][r]]
    scores = {s: data[s][r, columns].astype(np.float64) for s in sources}
    return FitSample(scores, persons[columns] == truth, str(truth))


def fit_way(meta, data, rows, columns_of, way):
    """``columns_of[r]``: per size, probe ``r``'s gallery columns (the last: all 858)."""
    encoders = json.loads(str(data["encoders"]))
    if way == "large":
        samples = [sample(meta, data, r, columns_of[r][-1]) for r in rows]
        return fit_profile(samples, encoders, folds=2)  # folds unused here: only the fit
    samples = [sample(meta, data, r, c) for r in rows for c in columns_of[r]]
    model = "fixed" if way == "pooled" else way
    return fit_profile(samples, encoders, folds=2, size_model=model)


def outcome(meta, data, r, profile, columns) -> tuple[float, float, bool]:
    """Person level: NLL of the true person, top-1 person probability, whether right."""
    persons = person_index(meta["persons"][columns])
    scores = {s: data[s][r, columns].astype(np.float64) for s in profile.weights}
    p = probabilities(profile.log_lr(scores)[1], 1.0)
    truth = persons[int(np.flatnonzero(columns == int(data["truth"][r]))[0])]
    summed = np.bincount(persons, weights=p, minlength=int(persons.max()) + 1)
    top = int(summed.argmax())
    nll = -math.log(max(float(summed[truth]), 1e-300))
    return nll, float(min(1.0, summed[top])), top == truth


def cross_validate(meta, data, rows, columns_of, way) -> dict:
    persons = meta["persons"][data["truth"][rows]]
    names = sorted(set(persons.tolist()))
    order = np.random.default_rng(SEED).permutation(len(names))
    fold_of = {names[i]: n % FOLDS for n, i in enumerate(order)}
    folds = np.array([fold_of[p] for p in persons])
    pooled = {size: ([], [], []) for size in SIZES}
    for fold in range(FOLDS):
        train, test = rows[folds != fold], rows[folds == fold]
        profile = fit_way(meta, data, train, columns_of, way)
        for r in test:
            for size, columns in zip(SIZES, columns_of[r], strict=True):
                for into, value in zip(
                    pooled[size], outcome(meta, data, r, profile, columns), strict=True
                ):
                    into.append(value)
    out = {
        str(size): {
            "nll": float(np.mean(nll)),
            "ece": expected_calibration_error(conf, correct),
            "mean_confidence": float(np.mean(conf)),
            "rank1": float(np.mean(correct)),
        }
        for size, (nll, conf, correct) in pooled.items()
    }
    out["nll_mean_over_sizes"] = float(np.mean([out[str(s)]["nll"] for s in SIZES]))
    return out


def describe(profile) -> dict:
    out = {
        "weights": {s: round(v, 4) for s, v in profile.weights.items()},
        "log_lr_offset": round(profile.log_lr_offset, 4),
    }
    if profile.sized:
        out["size_weights"] = {s: round(v, 4) for s, v in profile.size_weights.items()}
        out["size_offset"] = round(profile.size_offset, 4)
        out["size_reference"] = profile.size_reference
        out["at_size"] = {
            str(n): {s: round(w, 3) for s, w in profile.at_size(n)[0].items()}
            for n in (100, 200, 858, 1058)
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("calibration", type=Path)
    parser.add_argument("--dev", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sets", default=None, help="comma-separated (default: all in the dump)")
    parser.add_argument(
        "--reuse-cv",
        action="store_true",
        help="take the cross-validation and the choice from the existing --out (a --dev run "
        "after the choice was written) instead of recomputing them",
    )
    args = parser.parse_args()
    previous = json.loads(args.out.read_text(encoding="utf-8")) if args.reuse_cv else None
    meta, sets = load(args.calibration)
    if args.sets:
        sets = {k: v for k, v in sets.items() if k in args.sets.split(",")}
    n_ids = len(meta["identities"])
    if SIZES[-1] != n_ids:
        raise SystemExit(f"expected {SIZES[-1]} identities in the calibration dump, got {n_ids}")
    report: dict = {"command": "python " + " ".join(sys.argv), "sizes": SIZES, "sets": {}}
    if previous:
        report["cv_command"] = previous.get("cv_command", previous["command"])
    fitted: dict = {}
    for name, data in sets.items():
        rows = np.flatnonzero(usable(data))
        draws = gallery_size_columns(meta["enrolled"], SIZES, len(data["truth"]), seed=SEED)
        columns_of = {int(r): draws[int(r)] for r in range(len(draws))}
        entry: dict = {"calibration_probes": len(rows), "ways": {}}
        fitted[name] = {}
        for way in WAYS:
            profile = fit_way(meta, data, rows, columns_of, way)
            fitted[name][way] = profile
            entry["ways"][way] = {
                **describe(profile),
                "cv": previous["sets"][name]["ways"][way]["cv"]
                if previous
                else cross_validate(meta, data, rows, columns_of, way),
            }
            cv = entry["ways"][way]["cv"]
            print(
                f"{name:16s} {way:12s} CV NLL {cv['nll_mean_over_sizes']:.4f} | "
                + " | ".join(
                    f"{s}: ECE {cv[str(s)]['ece']:.3f} conf {cv[str(s)]['mean_confidence']:.3f}"
                    f" acc {cv[str(s)]['rank1']:.3f}"
                    for s in SIZES
                ),
                flush=True,
            )
        report["sets"][name] = entry
    totals = {
        w: sum(e["ways"][w]["cv"]["nll_mean_over_sizes"] for e in report["sets"].values())
        for w in WAYS
    }
    report["cv_nll_total"] = totals
    report["chosen_by_cv"] = min(WAYS, key=totals.get)
    print(f"CV NLL summed over the sets: {totals}; chosen: {report['chosen_by_cv']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")  # choice first
    if args.dev is None:
        return
    dmeta, dsets = load(args.dev)
    for name, data in dsets.items():
        if name not in fitted:
            continue
        drows = np.flatnonzero(usable(data))
        for way, profile in fitted[name].items():
            report["sets"][name]["ways"][way]["dev"] = {
                g: {
                    k: v
                    for k, v in evaluate(dmeta, data, drows, profile, cols).items()
                    if k != "bins"
                }
                for g, cols in (
                    ("200", np.flatnonzero(dmeta["enrolled"])),
                    ("1058", np.arange(len(dmeta["identities"]))),
                )
            }
            d = report["sets"][name]["ways"][way]["dev"]
            print(
                f"dev {name:16s} {way:12s} "
                + " | ".join(
                    f"{g}: ECE {d[g]['ece']:.3f} conf {d[g]['mean_confidence']:.3f} "
                    f"acc {d[g]['rank1']:.3f} nll {d[g]['nll']:.3f}"
                    for g in ("200", "1058")
                )
            )
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
