"""How well calibrated probabilities are: expected calibration error and a reliability diagram.

Each probe contributes its *top-1 confidence* (the calibrated probability of the
identity, or person, ranked first) and whether that identity is the true one. The
probes are put in :data:`BINS` equal-width bins of confidence; the expected
calibration error is the probe-weighted mean gap between a bin's mean confidence
and its accuracy (Guo et al., 2017). 0 is perfect; a model that says 90% and is
right 60% of the time has 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError

__all__ = [
    "BINS",
    "CalibrationReport",
    "calibration_markdown",
    "calibration_report",
    "expected_calibration_error",
    "mode_calibration",
    "plot_reliability",
    "reliability_bins",
    "reliability_diagram",
]

BINS = 10


def _check(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise InputError(
            f"calibration: confidence {confidence.shape} and correct {correct.shape} must be "
            "1-d and of one length"
        )
    if confidence.size and (
        not np.isfinite(confidence).all() or confidence.min() < 0 or confidence.max() > 1
    ):
        raise InputError("calibration: confidences must be probabilities in [0, 1]")
    return confidence, correct


def reliability_bins(confidence: Any, correct: Any, bins: int = BINS) -> list[dict[str, Any]]:
    """Per equal-width bin: its range, probes, mean confidence and accuracy (None when empty)."""
    confidence, correct = _check(confidence, correct)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        out.append(
            {
                "low": round(float(edges[b]), 4),
                "high": round(float(edges[b + 1]), 4),
                "probes": n,
                "confidence": round(float(confidence[inside].mean()), 4) if n else None,
                "accuracy": round(float(correct[inside].mean()), 4) if n else None,
            }
        )
    return out


def expected_calibration_error(confidence: Any, correct: Any, bins: int = BINS) -> float:
    """Probe-weighted mean |accuracy − confidence| over equal-width bins (0 when no probes)."""
    confidence, correct = _check(confidence, correct)
    if confidence.size == 0:
        return 0.0
    total = 0.0
    for row in reliability_bins(confidence, correct, bins):
        if row["probes"]:
            total += row["probes"] * abs(row["accuracy"] - row["confidence"])
    return total / confidence.size


@dataclass(frozen=True)
class CalibrationReport:
    """The calibration of one mode on one probe set."""

    level: str
    """``"person"`` or ``"photo"``: what counts as the top-1 being right."""
    probes: int
    ece: float
    mean_confidence: float
    accuracy: float
    bins: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "probes": self.probes,
            "ece": round(self.ece, 4),
            "mean_confidence": round(self.mean_confidence, 4),
            "accuracy": round(self.accuracy, 4),
            "bins": self.bins,
        }


def calibration_report(
    probabilities: np.ndarray, truth: np.ndarray, persons: np.ndarray | None = None
) -> CalibrationReport:
    """Top-1 calibration of ``(probes, identities)`` probabilities against true columns.

    With ``persons`` (a person index per column) the top-1 is the person with the
    largest summed probability, right when it is the true column's person.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    if probabilities.ndim != 2 or truth.shape != (probabilities.shape[0],):
        raise InputError("calibration: probabilities must be (probes, identities)")
    if persons is None:
        top = probabilities.argmax(axis=1)
        confidence = probabilities[np.arange(len(top)), top]
        correct = top == truth
        level = "photo"
    else:
        persons = np.asarray(persons, dtype=np.int64)
        summed = np.zeros((len(probabilities), int(persons.max()) + 1))
        np.add.at(summed.T, persons, probabilities.T)
        top = summed.argmax(axis=1)
        confidence = summed[np.arange(len(top)), top]
        correct = top == persons[truth]
        level = "person"
    confidence = np.clip(confidence, 0.0, 1.0)
    return CalibrationReport(
        level,
        len(truth),
        expected_calibration_error(confidence, correct),
        float(confidence.mean()) if len(truth) else 0.0,
        float(correct.mean()) if len(truth) else 0.0,
        reliability_bins(confidence, correct),
    )


def reliability_diagram(reports: dict[str, CalibrationReport], path: str | Path) -> Path:
    """Accuracy against confidence per bin, one line per labelled report; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for label, report in reports.items():
        rows = [r for r in report.bins if r["probes"]]
        axes.plot(
            [r["confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            marker="o",
            label=f"{label} (ECE {report.ece:.1%}, n={report.probes})",
        )
    axes.set_xlabel("top-1 calibrated probability (bin mean)")
    axes.set_ylabel("top-1 accuracy")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title("Reliability")
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# -- the eval harness's use (runner, report) --------------------------------------------------


def mode_calibration(
    outcomes: Any, truth: np.ndarray, persons: np.ndarray | None
) -> dict[str, Any] | None:
    """Top-1 calibration of a mode's probe outcomes per level, or None without probabilities.

    A probe that failed or gave no probabilities has confidence 0 (it names nobody).
    """
    if not any(getattr(o, "probabilities", None) is not None for o in outcomes):
        return None
    n_ids = len(persons) if persons is not None else None
    rows = []
    for o in outcomes:
        p = getattr(o, "probabilities", None)
        if p is None:
            width = n_ids or len(o.scores) if o.scores is not None else n_ids
            p = np.zeros(width or 1)
        rows.append(np.asarray(p, dtype=np.float64))
    matrix = np.stack(rows)
    out = {"photo": calibration_report(matrix, truth).to_json()}
    if persons is not None:
        out["person"] = calibration_report(matrix, truth, persons).to_json()
    return out


def calibration_markdown(results: Any) -> list[str]:
    """A markdown section: top-1 confidence, accuracy and ECE of each calibrated result."""
    rows = []
    for r in results:
        for level, c in (r.calibration or {}).items():
            rows.append(
                f"| {r.benchmark} | {r.label} | {level} | {c['probes']} | "
                f"{100 * c['mean_confidence']:.1f}% | {100 * c['accuracy']:.1f}% | "
                f"{100 * c['ece']:.1f}% |"
            )
    if not rows:
        return []
    return [
        "",
        "## Calibration",
        "",
        f"Top-1 calibrated probability against top-1 accuracy, {BINS} equal-width bins "
        "(reliability.png); every probe's person is enrolled, so the match prior is 1.",
        "",
        "| benchmark | mode · probe set | level | probes | mean top-1 probability | "
        "top-1 accuracy | ECE |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def plot_reliability(results: Any, path: str | Path) -> Path | None:
    """reliability.png of every calibrated result (person level where there is one)."""
    reports = {}
    for r in results:
        if not r.calibration:
            continue
        level = "person" if "person" in r.calibration else "photo"
        c = r.calibration[level]
        reports[f"{r.benchmark} {r.label} ({level})"] = CalibrationReport(
            level, c["probes"], c["ece"], c["mean_confidence"], c["accuracy"], c["bins"]
        )
    return reliability_diagram(reports, path) if reports else None
