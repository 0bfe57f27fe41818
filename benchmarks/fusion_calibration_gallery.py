"""Fit fusion profiles on calibration galleries of different sizes; compare by cross-validation.

    python benchmarks/fusion_calibration_gallery.py out/fusion-scores/calibration.npz \
        [--dev out/fusion-scores/dev.npz] --out benchmarks/results/fusion_calibration_gallery.json

Reads score dumps of benchmarks/fusion_scores.py. Three ways to fit each profile, all on
the calibration slice only (its probes; its photos, plus 758 training photos as distractors):

- ``small``: against the slice's 100 photos (how the shipped weights were fitted);
- ``large``: against the 858-photo gallery (the slice's photos + every other training photo);
- ``both``: each probe once against each gallery (pooled).

Choice (declared before any dev number was seen): one way for every profile, the one
with the lowest cross-validated negative log probability of the true person (5 folds
by person, as :func:`facefit.fusion.fit.fit_profile` makes them), averaged over both
calibration galleries and summed over the probe sets; the person-level top-1 ECE of
the held-out probes is reported beside it (100 probes: too noisy to choose by).
With ``--dev``, each fit (refitted on the whole slice) is then *applied* to the
development probes in the 200- and 1,058-photo galleries, for the report only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from facefit.evaluation.calibration import expected_calibration_error, reliability_bins
from facefit.fusion.fit import FitSample, fit_profile
from facefit.fusion.model import probabilities

WAYS = ("small", "large", "both")
FOLDS = 5


def load(path: Path) -> tuple[dict, dict]:
    z = np.load(path, allow_pickle=False)
    meta = {k: z[k] for k in ("identities", "persons", "enrolled")}
    sets: dict[str, dict] = {}
    for key in z.files:
        if "/" in key:
            name, what = key.split("/", 1)
            sets.setdefault(name, {})[what] = z[key]
    return meta, sets


def person_index(persons: np.ndarray) -> np.ndarray:
    _, index = np.unique(persons, return_inverse=True)
    return index


def samples_of(meta: dict, data: dict, columns: np.ndarray, rows: np.ndarray) -> list[FitSample]:
    """Calibration samples of the probes ``rows`` against the identities ``columns``."""
    sources = [s for s in data if s not in ("truth", "encoders")]
    persons = meta["persons"]
    out = []
    for r in rows:
        truth_person = persons[data["truth"][r]]
        scores = {s: data[s][r, columns].astype(np.float64) for s in sources}
        out.append(FitSample(scores, persons[columns] == truth_person, str(truth_person)))
    return out


def usable(data: dict) -> np.ndarray:
    """Probes with every source scored (a probe whose text was not scored is left out)."""
    sources = [s for s in data if s not in ("truth", "encoders")]
    return np.all([np.isfinite(data[s]).all(axis=1) for s in sources], axis=0)


def fit_way(meta, data, rows, way):
    enrolled = np.flatnonzero(meta["enrolled"])
    everyone = np.arange(len(meta["identities"]))
    encoders = json.loads(str(data["encoders"]))
    samples = []
    if way in ("small", "both"):
        samples += samples_of(meta, data, enrolled, rows)
    if way in ("large", "both"):
        samples += samples_of(meta, data, everyone, rows)
    return fit_profile(samples, encoders, folds=2)  # folds unused here: only the weights


def _top_person(p: np.ndarray, persons: np.ndarray) -> tuple[int, float]:
    """The person with the largest summed probability, and that sum (the eval's rule)."""
    summed = np.bincount(persons, weights=p, minlength=int(persons.max()) + 1)
    top = int(summed.argmax())
    return top, float(min(1.0, summed[top]))


def evaluate(meta, data, rows, profile, columns, keep_probes=False) -> dict:
    """Person-level NLL, top-1 ECE, mean confidence and rank-1 of ``profile`` on ``rows``."""
    persons = person_index(meta["persons"][columns])
    truth_col = {c: j for j, c in enumerate(columns)}
    confidence, correct, nll = [], [], []
    for r in rows:
        scores = {s: data[s][r, columns].astype(np.float64) for s in profile.weights}
        p = probabilities(profile.log_lr(scores)[1], 1.0)  # at this gallery's size
        truth = persons[truth_col[int(data["truth"][r])]]
        nll.append(-math.log(max(float(p[persons == truth].sum()), 1e-300)))
        top, conf = _top_person(p, persons)
        confidence.append(conf)
        correct.append(top == truth)
    out = {
        "probes": len(rows),
        "nll": float(np.mean(nll)),
        "ece": expected_calibration_error(confidence, correct),
        "ece_if_calibrated": ece_noise(confidence),
        "mean_confidence": float(np.mean(confidence)),
        "rank1": float(np.mean(correct)),
        "bins": reliability_bins(confidence, correct),
    }
    if keep_probes:
        out["_probes"] = (nll, confidence, correct)
    return out


def ece_noise(confidence, draws: int = 1000, seed: int = 0) -> dict:
    """The ECE a perfectly calibrated model with these confidences would show (each probe
    right with its own confidence): mean and 95th percentile over ``draws`` draws. The
    sampling noise of an ECE measured on this many probes."""
    rng = np.random.default_rng(seed)
    confidence = np.asarray(confidence, np.float64)
    eces = [
        expected_calibration_error(confidence, rng.random(confidence.size) < confidence)
        for _ in range(draws)
    ]
    return {"mean": float(np.mean(eces)), "p95": float(np.percentile(eces, 95))}


def cross_validate(meta, data, way, seed=0) -> dict:
    rows = np.flatnonzero(usable(data))
    persons = meta["persons"][data["truth"][rows]]
    names = sorted(set(persons.tolist()))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: n % FOLDS for n, i in enumerate(order)}
    folds = np.array([fold_of[p] for p in persons])
    galleries = (
        ("small", np.flatnonzero(meta["enrolled"])),
        ("large", np.arange(len(meta["identities"]))),
    )
    pooled = {g: ([], [], []) for g, _ in galleries}
    for fold in range(FOLDS):
        train, test = rows[folds != fold], rows[folds == fold]
        profile = fit_way(meta, data, train, way)
        for gallery, columns in galleries:
            held = evaluate(meta, data, test, profile, columns, keep_probes=True)["_probes"]
            for into, values in zip(pooled[gallery], held, strict=True):
                into.extend(values)
    out = {
        g: {
            "nll": float(np.mean(nll)),
            "ece": expected_calibration_error(conf, correct),
            "mean_confidence": float(np.mean(conf)),
            "rank1": float(np.mean(correct)),
        }
        for g, (nll, conf, correct) in pooled.items()
    }
    out["nll_pooled"] = (out["small"]["nll"] + out["large"]["nll"]) / 2
    return out


def plot(report: dict, path: Path, sets=("sketch", "sketch+lq8", "sketch+text+lq8")) -> None:
    """Development reliability (person level) of the ``small`` and the chosen fit, per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(sets), figsize=(4 * len(sets), 8), squeeze=False)
    for row, gallery in enumerate(("200", "1058")):
        for col, name in enumerate(sets):
            ax = axes[row][col]
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
            entry = report["sets"][name]
            for way in dict.fromkeys(("small", entry["chosen_by_cv"])):
                d = entry["ways"][way]["dev"][gallery]
                bins = [b for b in d["bins"] if b["probes"]]
                ax.plot(
                    [b["confidence"] for b in bins],
                    [b["accuracy"] for b in bins],
                    marker="o",
                    label=f"fit on {way} gallery (ECE {d['ece']:.1%})",
                )
            ax.set_title(f"{name}, {gallery}-photo dev gallery", fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("top-1 person probability (bin mean)")
            ax.set_ylabel("top-1 person accuracy")
            ax.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("calibration", type=Path)
    parser.add_argument("--dev", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plot", type=Path, default=None, help="reliability diagram (PNG)")
    args = parser.parse_args()
    meta, sets = load(args.calibration)
    dev = load(args.dev) if args.dev else None
    report: dict = {"command": "python " + " ".join(sys.argv), "sets": {}}
    for name, data in sets.items():
        rows = np.flatnonzero(usable(data))
        entry: dict = {"calibration_probes": len(rows), "ways": {}}
        for way in WAYS:
            profile = fit_way(meta, data, rows, way)
            w = {
                "weights": {s: round(v, 4) for s, v in profile.weights.items()},
                "log_lr_offset": round(profile.log_lr_offset, 4),
                "cv": cross_validate(meta, data, way),
            }
            if dev is not None and name in dev[1]:
                dmeta, dsets = dev
                ddata = dsets[name]
                drows = np.flatnonzero(usable(ddata))
                w["dev"] = {
                    g: evaluate(dmeta, ddata, drows, profile, cols)
                    for g, cols in (
                        ("200", np.flatnonzero(dmeta["enrolled"])),
                        ("1058", np.arange(len(dmeta["identities"]))),
                    )
                }
                w["dev_probes_used"] = len(drows)
            entry["ways"][way] = w
        report["sets"][name] = entry
        print(f"\n{name} ({len(rows)} calibration probes)")
        print(
            "| fit | weights | CV NLL small / large | CV ECE small / large | dev ECE 200 / 1058 "
            "| dev ECE if calibrated 200 / 1058 | dev top-1 person accuracy 200 / 1058 "
            "| dev mean top-1 probability 200 / 1058 |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for way, w in entry["ways"].items():
            cv = w["cv"]
            d = w.get("dev", {})
            dev_txt = (
                " | ".join(
                    " / ".join(f"{get(d[g]):.1%}" for g in ("200", "1058"))
                    for get in (
                        lambda x: x["ece"],
                        lambda x: x["ece_if_calibrated"]["mean"],
                        lambda x: x["rank1"],
                        lambda x: x["mean_confidence"],
                    )
                )
                if d
                else "- | - | - | -"
            )
            print(
                f"| {way} | {w['weights']} | {cv['small']['nll']:.3f} / {cv['large']['nll']:.3f} | {cv['small']['ece']:.1%} / {cv['large']['ece']:.1%} | {dev_txt} |"
            )
    totals = {
        w: sum(e["ways"][w]["cv"]["nll_pooled"] for e in report["sets"].values()) for w in WAYS
    }
    report["cv_nll_total"] = totals
    report["chosen_by_cv"] = min(WAYS, key=totals.get)
    for entry in report["sets"].values():
        entry["chosen_by_cv"] = report["chosen_by_cv"]
    print(f"\nCV NLL summed over the sets: {totals}; chosen: {report['chosen_by_cv']}")
    if args.plot and dev is not None:
        plot(report, args.plot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
