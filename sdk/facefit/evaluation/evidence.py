"""Load a probe's evidence from disk, making low-quality copies where the manifest says so.

A low-quality probe *made* from a true photo follows the IdentiFace protocol: the
photo's face is detected and aligned to the standard 5-point template, and the
aligned crop is reduced to ``lq_size``×``lq_size`` pixels. The result is an aligned
image (:attr:`LoadedProbe.lq_aligned`): it is embedded or conditioned on without
detection, since no detector finds a face in 8×8 pixels. A real low-quality frame
(no ``lq_size``) is loaded as it is and must be detected like any photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefit.evaluation.manifest import Manifest, Probe
from facefit.imaging.faces import FaceEmbedder, resize_aligned
from facefit.imaging.images import load_image
from facefit.types import Evidence

__all__ = ["ALIGN_SIZE", "LoadedProbe", "load_probe", "low_quality_copy", "resize_aligned"]

ALIGN_SIZE = 112
"""Crop size at which a true photo is aligned before it is reduced."""


@dataclass(frozen=True)
class LoadedProbe:
    """A probe with its evidence in memory."""

    probe: Probe
    evidence: Evidence
    lq_aligned: bool = False
    """True when ``evidence.lq`` is an aligned crop made from the true photo."""


def low_quality_copy(aligned: np.ndarray, size: int) -> np.ndarray:
    """An aligned crop reduced to ``size``×``size`` by area averaging, nothing else.

    The benchmark protocol is the plain reduction (:func:`facefit.imaging.degrade.downscale`,
    the primitive training degradations build on) without the blur, noise and JPEG
    that training draws at random, so a benchmark number never moves with them.
    """
    from facefit.imaging.degrade import downscale

    return downscale(aligned, size)


def load_probe(manifest: Manifest, probe: Probe, aligner: FaceEmbedder) -> LoadedProbe:
    """Read a probe's files; raises :class:`~facefit.errors.InputError` naming the file.

    ``aligner`` detects and aligns the true photo when a low-quality copy is made.
    """
    sources: dict[str, str] = {}
    images: dict[str, np.ndarray | None] = {"sketch": None, "lq": None, "reference": None}
    for modality in ("sketch", "reference"):
        relative = getattr(probe, modality)
        if relative is not None:
            path = manifest.path(relative)
            images[modality] = load_image(path)
            sources[modality] = str(path)
    lq_aligned = False
    if probe.lq is not None:
        path = manifest.path(probe.lq)
        image = load_image(path)
        if probe.lq_size is not None:
            crop = aligner.align(image, size=ALIGN_SIZE, source=str(path))
            image = low_quality_copy(crop, probe.lq_size)
            lq_aligned = True
            sources["lq"] = f"{path} (aligned, reduced to {probe.lq_size}x{probe.lq_size})"
        else:
            sources["lq"] = str(path)
        images["lq"] = image
    evidence = Evidence(
        sketch=images["sketch"],
        lq=images["lq"],
        text=probe.text,
        reference=images["reference"],
        sources=sources,
    )
    return LoadedProbe(probe, evidence.require_any(), lq_aligned)
