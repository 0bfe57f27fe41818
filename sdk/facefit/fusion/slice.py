"""Fit fusion weights and calibration on the calibration slice (``facefit fusion fit``).

The slice is :func:`facefit.datasets.splits.fs2k_calibration`: FS2K training pairs of persons
that no model trains on and that are never in the development split. The gallery is
its 100 photos plus, as distractors, the photos of every other training pair
(:func:`facefit.datasets.splits.fs2k_training`, 758; never a development photo): 858
identities, near the size of the 1,058-photo development gallery. Against the 100
photos alone the weights over-trusted sources that tell a few people apart but not
many (the description's attributes, the 8×8 frame) and the cross-validated likelihood
was worse (``distractors=False``, ``facefit fusion fit --no-distractors``, keeps that
fit; benchmarks/results/fusion_calibration_gallery.md).

With a ``size_model`` other than ``"fixed"`` (:mod:`facefit.fusion.fit`), each probe is
fitted in galleries of several sizes (``gallery_sizes``: the calibration photos plus a
random subset of the distractors, :func:`facefit.fusion.fit.gallery_size_samples`), so
that its probabilities hold for galleries of other sizes than 858
(benchmarks/results/fusion_gallery_size.md). It needs the distractors, and it applies
to the direct profiles only: a generation fit scores only the loop's top identities, so
its gallery size is not known; generation profiles are fitted ``"fixed"``. Each probe set (``sketch``,
``sketch+lq8``, …) becomes probes exactly as the eval harness makes them
(:mod:`facefit.evaluation`), so the scores fitted on are the scores the harness and the
pipeline compute.

- **direct** profiles: each probe's evidence matched directly, per source
  (:func:`facefit.evaluation.fused.direct_source_scores`);
- **generation** profiles (``generation=True``): the loop runs on each probe
  (one round, or ``rounds``) and its result's per-source scores are fitted, the
  generated candidates' score included. This needs the generator the pipeline
  loads (``config``); it is what the lead reruns once a new generator is accepted.

Every profile is fitted with :func:`facefit.fusion.fit.fit_profile` (deterministic).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.fusion.fit import SIZE_MODELS, FitSample, fit_profile, gallery_size_samples
from facefit.fusion.model import FusionModel, Profile

__all__ = [
    "DEFAULT_GALLERY_SIZES",
    "DEFAULT_PROBE_SETS",
    "DEFAULT_SIZE_MODEL",
    "calibration_manifest",
    "fit_calibration_slice",
]

log = logging.getLogger(__name__)

DEFAULT_PROBE_SETS = ("sketch", "lq8", "lq16", "sketch+lq8", "sketch+text", "sketch+text+lq8")
"""Evidence combinations fitted by default (one profile each; a low-quality image's size
is part of its profile, :func:`facefit.fusion.model.lq_id`)."""
DEFAULT_GALLERY_SIZES = (100, 200, 400, 858)
"""Gallery sizes of a size-model fit: the 100 calibration photos alone, with 100 and 300
random distractors, and with all 758 (a size at or above the whole gallery is all of it)."""
DEFAULT_SIZE_MODEL = "per-source"
"""The size model ``facefit fusion fit`` uses with distractors (the cross-validated choice,
benchmarks/results/fusion_gallery_size.md)."""


def calibration_manifest(
    data_dir: str | Path, probe_sets: Sequence[str], *, distractors: bool = True
) -> Any:
    """The calibration slice as an eval manifest: its photos are the gallery, with the
    other training pairs' photos as gallery-only identities when ``distractors``."""
    from facefit.datasets import splits
    from facefit.datasets.persons import load_persons
    from facefit.evaluation.readers import read_fs2k

    data_dir = Path(data_dir)
    ids = splits.fs2k_calibration(data_dir)
    if not ids:
        raise InputError(
            f"{data_dir}: no calibration slice (facefit.datasets.splits.fs2k_calibration)"
        )
    extra = splits.fs2k_training(data_dir) if distractors else ()
    overlap = (set(ids) | set(extra)) & set(splits.fs2k_split(data_dir).dev)
    if overlap:  # cannot happen by construction; checked because it must never happen
        raise InputError(f"calibration slice overlaps the development split: {sorted(overlap)[:3]}")
    persons = load_persons(data_dir)
    return read_fs2k(
        data_dir / splits.FS2K_DIR,
        probe_sets=list(probe_sets),
        ids=ids,
        gallery_only=extra,
        name="fs2k-calibration" + ("-with-distractors" if distractors else ""),
        persons=persons.fs2k_person,
        split={"name": "calibration", "data": "fs2k", "fingerprint": splits.fingerprint(ids)},
    )


def _positives(manifest: Any, identities: Sequence[str], probe: Any) -> np.ndarray:
    persons = manifest.persons or {}
    mine = persons.get(probe.identity, probe.identity)
    return np.array([persons.get(i, i) == mine for i in identities], bool)


def _direct_samples(context: Any, probes: Sequence[Any]) -> tuple[list[FitSample], dict]:
    from facefit.evaluation.evidence import load_probe
    from facefit.evaluation.fused import direct_source_scores

    manifest = context.manifest
    identities = context.gallery(context.encoder).identities
    aligner = context.embedder(context.encoder)
    samples, encoders = [], None
    for probe in probes:
        loaded = load_probe(manifest, probe, aligner)
        scores, found, notes = direct_source_scores(context, loaded)
        for note in notes:
            log.info("%s: %s", probe.id, note)
        if encoders is None:
            encoders = found
        elif found != encoders:
            raise InputError(f"{probe.id}: scored by {found}, the set's first probe by {encoders}")
        person = (manifest.persons or {}).get(probe.identity, probe.identity)
        samples.append(FitSample(scores, _positives(manifest, identities, probe), person))
    return samples, encoders or {}


def _generation_samples(context: Any, probes: Sequence[Any], rounds: int) -> tuple[list, dict]:
    """Run the loop on each probe; its result's per-source scores of every identity."""
    from dataclasses import replace

    from facefit.evaluation.evidence import load_probe
    from facefit.pipeline.evaluation import EVAL_ALLOW_NO_FACE

    manifest = context.manifest
    identities = context.gallery(context.encoder).identities
    aligner = context.embedder(context.encoder)
    generate = context.generator()
    samples, encoders = [], None
    for probe in probes:
        evidence = load_probe(manifest, probe, aligner).evidence
        evidence = replace(evidence, allow_no_face=EVAL_ALLOW_NO_FACE)
        result = generate(evidence, rounds)
        found = dict(result.provenance.get("fusion", {}).get("encoders", {}))
        if not found:
            raise InputError(f"{probe.id}: the pipeline's result carries no fusion sources")
        encoders = encoders or found
        column = {name: j for j, name in enumerate(identities)}
        scores = {s: np.full(len(identities), -np.inf) for s in found}
        for match in result.matches:
            for source, value in match.sources.items():
                scores[source][column[match.identity]] = value
        person = (manifest.persons or {}).get(probe.identity, probe.identity)
        samples.append(FitSample(scores, _positives(manifest, identities, probe), person))
    return samples, encoders or {}


def fit_calibration_slice(
    data_dir: str | Path,
    *,
    probe_sets: Sequence[str] = DEFAULT_PROBE_SETS,
    registry: Any = None,
    matcher: str | None = None,
    matcher_options: dict[str, Any] | None = None,
    generation: bool = False,
    rounds: int = 1,
    config: Any = None,
    seed: int = 0,
    limit: int | None = None,
    keep: FusionModel | None = None,
    command: str | None = None,
    distractors: bool = True,
    size_model: str = "fixed",
    gallery_sizes: Sequence[int] = DEFAULT_GALLERY_SIZES,
) -> FusionModel:
    """Fit one profile per probe set on the calibration slice (see the module doc).

    ``keep``: an existing model whose other profiles are kept (a refit of the
    generation profiles leaves the direct ones as they are, and the reverse).
    ``size_model`` (:data:`facefit.fusion.fit.SIZE_MODELS`) and ``gallery_sizes``: fit the
    direct profiles in galleries of these sizes, with that gallery-size term.
    """
    from facefit.evaluation.modes import EvalContext

    if size_model not in SIZE_MODELS:
        raise InputError(f"size model must be one of {', '.join(SIZE_MODELS)}, not {size_model!r}")
    if size_model != "fixed" and not distractors:
        raise InputError(
            f"a {size_model} size model is fitted on galleries of several sizes drawn from the "
            "distractors: it needs them (drop --no-distractors, or use --size-model fixed)"
        )
    if size_model != "fixed" and generation:
        raise InputError(
            "generation profiles are fitted with --size-model fixed (a generation fit scores "
            "only the loop's top identities, so its gallery size is unknown)"
        )

    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    manifest = calibration_manifest(data_dir, probe_sets, distractors=distractors)
    if limit:
        manifest = manifest.select(limit=limit)
    context = EvalContext(
        manifest,
        registry,
        matcher=matcher,
        matcher_options=matcher_options,
        rounds=rounds,
        config=config,
    )
    if generation:
        from facefit.pipeline.evaluation import evaluation_generator

        context.generator_factory = evaluation_generator
    profiles: dict[str, Profile] = dict(keep.profiles) if keep is not None else {}
    probed = {p.identity for p in manifest.probes}
    others = len({g.identity for g in manifest.full_gallery()} - probed)
    gallery = f"{len(probed)} calibration photos" + (
        f" + {others} training photos as distractors" if others else ""
    )
    for probe_set in manifest.probe_sets:
        probes = list(manifest.probes_of(probe_set))
        if generation:
            samples, encoders = _generation_samples(context, probes, rounds)
            how = f"loop, {rounds} round(s), probe set {probe_set}"
        else:
            samples, encoders = _direct_samples(context, probes)
            how = f"direct evidence, probe set {probe_set}"
        info = {"on": "fs2k calibration slice", "scores": how, "gallery": gallery}
        if size_model != "fixed":
            identities = context.gallery(context.encoder).identities
            core = np.array([i in probed for i in identities], bool)
            samples = gallery_size_samples(samples, core, gallery_sizes, seed=seed)
            info["gallery"] += (
                f"; each probe in galleries of {', '.join(map(str, gallery_sizes))} identities "
                "(the calibration photos + random distractors)"
            )
        profile = fit_profile(samples, encoders, seed=seed, fit_info=info, size_model=size_model)
        log.info("%s: %s", profile.key, profile.weights)
        profiles[profile.key] = profile
    meta = {
        "command": command,
        "date": _dt.date.today().isoformat(),
        "data": manifest.split,
        "probes_per_set": len(manifest.probes_of(manifest.probe_sets[0])),
        "matcher": _matcher_record(context),
    }
    if keep is not None and keep.meta:
        meta["previous"] = {k: v for k, v in keep.meta.items() if k != "previous"}
    return FusionModel(list(profiles.values()), meta)


def _matcher_record(context: Any) -> dict[str, Any] | None:
    """Which sketch matcher the sketch scores came from (its directory and version)."""
    if not context.matcher:
        return None
    encoder = context.embedder(context.matcher).encoder
    return {
        "name": context.matcher,
        "version": encoder.version,
        "directory": str(getattr(encoder, "directory", "")) or None,
    }
