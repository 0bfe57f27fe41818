"""Run modes over benchmarks: every check first, then the work, with a progress bar.

    >>> from facefit.evaluation import evaluate, read_benchmark
    >>> run = evaluate([read_benchmark("fs2k-folder")], ["direct", "one-shot"])
    >>> run.results[0].metrics.rank1

Before any probe is touched: the manifests are validated (by their readers), the
mode names checked, the detector and encoder created and their weights loaded, and
each mode's availability decided. A probe whose evidence cannot be used (no face in
a photo, an unreadable file) is kept as a failure — a miss at every rank.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.evaluation.calibration import mode_calibration
from facefit.evaluation.evidence import load_probe
from facefit.evaluation.manifest import Manifest
from facefit.evaluation.metrics import (
    IdentificationMetrics,
    identification_metrics,
    person_codes,
)
from facefit.evaluation.modes import (
    MODES,
    EvalContext,
    EvalMode,
    GeneratorFactory,
    ProbeOutcome,
    create_modes,
)

__all__ = ["BenchmarkInfo", "EvalRun", "ModeResult", "evaluate"]

log = logging.getLogger(__name__)


@dataclass
class ModeResult:
    """One mode on one probe set of one benchmark."""

    benchmark: str
    mode: str
    probe_set: str
    status: str
    """``"ok"``, ``"unavailable"`` (the mode's parts are missing) or ``"unsupported"``."""
    reason: str | None = None
    probes: int = 0
    modalities: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    lq_made_at: int | None = None
    """Size the low-quality input was made at from the true photo (None: real or absent)."""
    encoder: str | None = None
    metrics: IdentificationMetrics | None = None
    """Photo level: every gallery identity counts on its own."""
    person_metrics: IdentificationMetrics | None = None
    """Person level, when the benchmark declares persons (identities of one person are one)."""
    seconds_per_probe: float | None = None
    outcomes: list[ProbeOutcome] = field(default_factory=list, repr=False)
    notes: dict[str, int] = field(default_factory=dict)
    """How often each note (e.g. the sketch fallback) occurred."""
    errors: dict[str, int] = field(default_factory=dict)
    grades: dict[str, float | None] = field(default_factory=dict)
    """Mean identity cosine of generated faces to the true photo, per grader."""
    calibration: dict[str, Any] | None = None
    """Top-1 calibration per level (``"photo"``, ``"person"``) where the mode gives
    probabilities (:mod:`facefit.evaluation.calibration`)."""

    @property
    def label(self) -> str:
        return f"{self.mode} · {self.probe_set}"


@dataclass
class BenchmarkInfo:
    """What a benchmark holds, and how its gallery enrolled."""

    name: str
    source: str
    description: str
    gallery_images: int
    identities: int
    distractor_images: int
    probe_sets: dict[str, int]
    enrolment: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per encoder: seconds, images enrolled, failures (path, error)."""
    persons: int | None = None
    """Distinct persons among the enrolled identities; None: no persons declared."""
    scoring: list[str] = field(default_factory=lambda: ["photo"])
    """The levels reported: ``["photo"]``, or ``["photo", "person"]`` with persons."""
    split: dict[str, str] | None = None
    """The split the benchmark is (name, fingerprint), when it is one."""


@dataclass
class EvalRun:
    """Everything one ``facefit eval`` produced."""

    benchmarks: list[BenchmarkInfo]
    results: list[ModeResult]
    modes: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    environment: dict[str, Any]
    galleries: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    """Per benchmark and encoder: identities and image paths, for the contact sheet."""
    manifests: dict[str, Manifest] = field(default_factory=dict, repr=False)


def environment() -> dict[str, Any]:
    """Versions and machine facts that numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("facefit", "numpy", "onnxruntime", "opencv-python-headless", "torch", "dlib-bin"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "source_commit": _source_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": packages,
    }


def _source_commit() -> str | None:
    """The git commit of the facefit source tree, when running from a checkout."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


TOP_K = 10
"""How many of the best identities are kept per probe (for the contact sheet and probes.jsonl)."""


def _keep_summary(outcome: ProbeOutcome, keep_images: bool) -> None:
    """Keep the top identities; drop per-identity image indices, and images after the first probes."""
    if outcome.scores is not None:
        scores = np.asarray(outcome.scores, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:TOP_K]
        best = outcome.best_images
        outcome.top = tuple(
            (int(j), float(scores[j]), int(best[j]) if best is not None else -1)
            for j in order
            if np.isfinite(scores[j])
        )
        outcome.scores = scores
    if outcome.probabilities is not None:
        outcome.probabilities = np.asarray(outcome.probabilities, dtype=np.float32)
    outcome.best_images = None
    if not keep_images:
        outcome.evidence = None
        outcome.candidates = ()


def _run_probe_set(
    context: EvalContext,
    mode: EvalMode,
    probes,
    benchmark: str,
    probe_set: str,
    progress: bool,
    keep_images: int,
) -> ModeResult:
    gallery = mode.prepare(context)
    first = probes[0]
    result = ModeResult(
        benchmark=benchmark,
        mode=mode.name,
        probe_set=probe_set,
        status="ok",
        probes=len(probes),
        modalities=first.modalities,
        ignored=mode.ignored(first),
        lq_made_at=first.lq_size,
        encoder=mode.encoder_name(context),
    )
    iterator = probes
    if progress:
        from tqdm import tqdm

        iterator = tqdm(
            probes, desc=f"{benchmark} {mode.name} {probe_set}", unit="probe", leave=False
        )
    aligner = context.embedder(context.encoder)
    for probe in iterator:
        # timed: the mode's work from evidence in memory to identity scores (not file reading)
        start = None
        try:
            loaded = load_probe(context.manifest, probe, aligner)
            start = time.perf_counter()
            outcome = mode.run_probe(context, loaded)
            outcome.seconds = time.perf_counter() - start
            outcome.evidence = loaded.evidence
        except InputError as exc:
            seconds = 0.0 if start is None else time.perf_counter() - start
            outcome = ProbeOutcome(probe, None, error=str(exc), seconds=seconds)
            kind = type(exc).__name__
            result.errors[kind] = result.errors.get(kind, 0) + 1
            log.info("%s: %s", probe.id, exc)
        _keep_summary(outcome, keep_images=len(result.outcomes) < keep_images)
        for note in outcome.notes:
            result.notes[note] = result.notes.get(note, 0) + 1
        result.outcomes.append(outcome)
    n_ids = len(gallery.identities)
    scores = np.stack(
        [o.scores if o.scores is not None else np.full(n_ids, -np.inf) for o in result.outcomes]
    )
    truth = np.array([gallery.column(p.identity) for p in probes])
    failed = np.array([o.failed for o in result.outcomes])
    groups = [p.groups for p in probes]
    result.metrics = identification_metrics(scores, truth, failed=failed, groups=groups)
    persons = context.manifest.persons
    if persons:
        result.person_metrics = identification_metrics(
            scores,
            truth,
            failed=failed,
            groups=groups,
            persons=person_codes(gallery.identities, persons),
        )
    result.calibration = mode_calibration(
        result.outcomes, truth, person_codes(gallery.identities, persons) if persons else None
    )
    timed = [o.seconds for o in result.outcomes if o.seconds > 0]
    result.seconds_per_probe = float(np.mean(timed)) if timed else None
    if mode.generates:
        names = context.grader_names
        result.grades = {
            name: _mean([c for o in result.outcomes for c in o.grades.get(name, [])])
            for name in names
        }
        for name, reason in context.grader().unavailable.items():
            result.notes[f"grader {name} unavailable: {reason}"] = 1
    return result


def evaluate(
    manifests: Sequence[Manifest],
    modes: Sequence[str],
    *,
    registry: Any = None,
    detector: str = "yunet",
    encoder: str = "sface",
    matcher: str | None = None,
    matcher_options: dict[str, Any] | None = None,
    graders: Sequence[str] = ("dlib", "sface"),
    rounds: int = 3,
    generator_factory: GeneratorFactory | None = None,
    config: Any = None,
    mode_registry: dict[str, type[EvalMode]] = MODES,
    progress: bool = True,
    keep_images: int = 4,
    fusion_weights: str | None = None,
) -> EvalRun:
    """Evaluate ``modes`` on every probe set of every manifest.

    The evidence and generated images of the first ``keep_images`` probes of each
    set are kept for the contact sheet; the others are dropped as the run goes.
    ``matcher_options`` go to the matcher's face encoder (e.g. ``{"weights": DIR}``).
    ``fusion_weights`` is the weights file of the ``fused`` mode and of the generating
    modes' rankings (None: the shipped one).
    """
    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    mode_objects = create_modes(list(modes), mode_registry)
    if not manifests:
        raise InputError("no benchmark given")
    names = [m.name for m in manifests]
    if len(set(names)) != len(names):
        raise InputError(f"two benchmarks share a name: {', '.join(names)}")
    for manifest in manifests:
        manifest.validate()
    settings = {
        "modes": [m.name for m in mode_objects],
        "detector": detector,
        "encoder": encoder,
        "matcher": matcher,
        "graders": list(graders),
        "rounds": rounds,
    }
    if matcher_options:
        settings["matcher_options"] = {k: str(v) for k, v in matcher_options.items()}
    if fusion_weights is not None or "fused" in settings["modes"]:
        from facefit.fusion import DEFAULT_WEIGHTS

        settings["fusion_weights"] = str(fusion_weights or DEFAULT_WEIGHTS)
    embedders: dict = {}  # detector + encoder models, shared by the benchmarks
    contexts = [
        EvalContext(
            m,
            registry,
            detector=detector,
            encoder=encoder,
            matcher=matcher,
            matcher_options=matcher_options,
            graders=graders,
            rounds=rounds,
            generator_factory=generator_factory,
            config=config,
            progress=progress,
            embedders=embedders,
            fusion_weights=fusion_weights,
        )
        for m in manifests
    ]
    contexts[0].embedder(encoder)  # a missing detector, encoder or weights fails here, before work
    reasons = {
        (c.manifest.name, mode.name): mode.unavailable(c) for c in contexts for mode in mode_objects
    }
    availability = {}
    for mode in mode_objects:
        why = [reasons[(m.name, mode.name)] for m in manifests]
        availability[mode.name] = {
            "summary": mode.summary,
            "available": any(r is None for r in why),
            "reason": next((r for r in why if r is not None), None),
        }

    run = EvalRun([], [], availability, settings, environment())
    for context in contexts:
        manifest = context.manifest
        for mode in mode_objects:
            reason = reasons[(manifest.name, mode.name)]
            for probe_set in manifest.probe_sets:
                probes = manifest.probes_of(probe_set)
                base = {"benchmark": manifest.name, "mode": mode.name, "probe_set": probe_set}
                status, why = (
                    ("unavailable", reason)
                    if reason is not None
                    else ("unsupported", mode.unsupported(probes[0]))
                )
                if why is not None:
                    run.results.append(
                        ModeResult(
                            **base,
                            status=status,
                            reason=why,
                            probes=len(probes),
                            modalities=probes[0].modalities,
                            lq_made_at=probes[0].lq_size,
                        )
                    )
                    continue
                run.results.append(
                    _run_probe_set(
                        context, mode, list(probes), manifest.name, probe_set, progress, keep_images
                    )
                )
        run.benchmarks.append(_info(manifest, context))
        run.manifests[manifest.name] = manifest
        run.galleries[manifest.name] = {
            name: {"identities": g.identities, "image_paths": g.image_paths}
            for name, g in context.galleries.items()
        }
    return run


def _info(manifest: Manifest, context: EvalContext) -> BenchmarkInfo:
    distractors = manifest.distractor_images()
    counts: dict[str, int] = {}
    for probe in manifest.probes:
        counts[probe.probe_set] = counts.get(probe.probe_set, 0) + 1
    enrolment = {
        name: {
            "seconds": round(g.seconds, 2),
            "images": len(g.image_paths),
            "identities_without_image": int(np.sum(np.diff(g.bounds) == 0)),
            "failures": [{"path": p, "error": e} for p, e in g.failures],
        }
        for name, g in context.galleries.items()
    }
    persons = manifest.persons
    return BenchmarkInfo(
        name=manifest.name,
        source=manifest.source,
        description=manifest.description,
        gallery_images=len(manifest.gallery),
        identities=len(manifest.identities),
        distractor_images=len(distractors),
        probe_sets=counts,
        enrolment=enrolment,
        persons=len(set(person_codes(manifest.identities, persons))) if persons else None,
        scoring=["photo", "person"] if persons else ["photo"],
        split=dict(manifest.split) if manifest.split is not None else None,
    )
