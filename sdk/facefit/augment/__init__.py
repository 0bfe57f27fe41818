"""Mugshots in, synthetic sketches out: training data for sketch matchers (CLIP4Sketch).

    >>> from facefit.augment import AugmentSettings, augment
    >>> settings = AugmentSettings(per_identity=6, styles=("0", "2"), min_identity_cosine=0.3)
    >>> report = augment("mugshots/", "out/sketches", settings)   # DIR/<identity>/<image>
    >>> report.counts["kept"], report.dropped_by_identity

Each mugshot is detected and aligned (YuNet), embedded (SFace), and its embedding
is the generator's reference identity; a generator that takes a reference image
(v2) gets the aligned mugshot too. The generator renders sketches in the asked
FS2K styles (the domain condition), optionally with free-text prompts as text
evidence. ``TrainingPhotos(data_dir)`` is the source for matcher training: every
photo of the CelebA training identities and the FS2K training pairs
(:mod:`facefit.datasets.splits`); development and calibration photos are refused. Each sketch is embedded again and dropped when its cosine to the mugshot
is below ``min_identity_cosine``. The output folder is in FS2K format
(``photo/``, ``sketch/``, ``annotations.json``) with a ``manifest.json`` of
provenance; work is committed shard by shard, so an interrupted job resumes, on
this machine or on a Ray cluster (:mod:`facefit.augment.distributed`).

Modules: :mod:`~facefit.augment.inputs` (what to read), :mod:`~facefit.augment.plan`
(settings, shards, seeds), :mod:`~facefit.augment.worker` (making a shard),
:mod:`~facefit.augment.store` (the output folder), :mod:`~facefit.augment.run`
(local runs), :mod:`~facefit.augment.distributed` (Ray). See ``docs/augmentation.md``.
"""

from __future__ import annotations

from facefit.lazy import lazy_exports

_EXPORTS = {
    "AugmentSettings": "facefit.augment.plan",
    "Job": "facefit.augment.plan",
    "parse_styles": "facefit.augment.plan",
    "plan_job": "facefit.augment.plan",
    "sample_seed": "facefit.augment.plan",
    "HeldOut": "facefit.augment.inputs",
    "Mugshot": "facefit.augment.inputs",
    "TrainingPhotos": "facefit.augment.inputs",
    "read_mugshots": "facefit.augment.inputs",
    "OutputFolder": "facefit.augment.store",
    "AugmentReport": "facefit.augment.run",
    "augment": "facefit.augment.run",
    "augment_ray": "facefit.augment.distributed",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
