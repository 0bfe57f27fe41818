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
    """True when ``evidence.lq`` (and every extra frame) is an aligned crop made from
    the true photo."""


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
    Every sketch and frame of a probe that lists several is read (and each frame made
    low-quality at ``lq_size``); the first is the evidence's ``sketch`` / ``lq``, the
    others its ``extra_sketches`` / ``extra_lq``, recorded in ``sources`` as
    ``"sketch.2"``… as :class:`~facefit.types.Evidence` does.
    """
    sources: dict[str, str] = {}
    images: dict[str, list[np.ndarray]] = {"sketch": [], "lq": [], "reference": []}
    for modality in ("sketch", "reference"):
        for n, relative in enumerate(probe.entries(modality), start=1):
            path = manifest.path(relative)
            images[modality].append(load_image(path))
            sources[source_key(modality, n)] = str(path)
    lq_aligned = False
    for n, relative in enumerate(probe.entries("lq"), start=1):
        path = manifest.path(relative)
        image = load_image(path)
        if probe.lq_size is not None:
            crop = aligner.align(image, size=ALIGN_SIZE, source=str(path))
            image = low_quality_copy(crop, probe.lq_size)
            lq_aligned = True
            size = probe.lq_size
            sources[source_key("lq", n)] = f"{path} (aligned, reduced to {size}x{size})"
        else:
            sources[source_key("lq", n)] = str(path)
        images["lq"].append(image)
    evidence = Evidence(
        sketch=images["sketch"][0] if images["sketch"] else None,
        lq=images["lq"][0] if images["lq"] else None,
        text=probe.text,
        reference=images["reference"][0] if images["reference"] else None,
        sources=sources,
        extra_sketches=tuple(images["sketch"][1:]),
        extra_lq=tuple(images["lq"][1:]),
        extra_texts=probe.extra_texts,
    )
    return LoadedProbe(probe, evidence.require_any(), lq_aligned)


def source_key(modality: str, n: int) -> str:
    """``sources`` key of the ``n``-th image of a modality (from 1), as in Evidence."""
    return modality if n == 1 else f"{modality}.{n}"
