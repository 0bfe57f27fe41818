"""One probe from files to an output folder: load, run the loop, write everything."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facefit.types import Evidence, Result

__all__ = ["ProbeFiles", "run_probe_files"]


@dataclass(frozen=True)
class ProbeFiles:
    """A probe's evidence as files (any subset) and text."""

    sketch: str | None = None
    lq: str | None = None
    text: str | None = None
    reference: str | None = None
    id: str = "probe"
    extra: dict[str, Any] = field(default_factory=dict)

    def paths(self) -> dict[str, str]:
        return {
            m: str(p)
            for m, p in (("sketch", self.sketch), ("lq", self.lq), ("reference", self.reference))
            if p is not None
        }

    def load(self) -> Evidence:
        return Evidence(text=self.text, **self.paths()).require_any()


def _gallery_images(pipeline: Any, result: Result) -> dict[str, np.ndarray]:
    """Pictures of the top identities for the contact sheet, where the gallery kept a readable path."""
    from facefit.errors import InputError
    from facefit.images import load_image

    out = {}
    for match in result.top(6):
        if match.image_id and Path(match.image_id).is_file():
            try:
                out[match.identity] = load_image(match.image_id)
            except InputError:
                continue
    return out


def run_probe_files(
    pipeline: Any,
    probe: ProbeFiles,
    out: str | Path,
    *,
    on_round: Any = None,
    command: list[str] | None = None,
    progress: Any = None,
    cancel: Any = None,
) -> Result:
    """Run the loop on one probe and write its output folder (see :mod:`.output`).

    ``progress`` and ``cancel`` go to :meth:`Pipeline.run <facefit.pipeline.Pipeline.run>`;
    a cancelled run writes nothing and raises :class:`~facefit.pipeline.Cancelled`.
    """
    from facefit.pipeline.output import write_run
    from facefit.pipeline.provenance import make_provenance

    start = time.perf_counter()
    evidence = probe.load()
    loaded = time.perf_counter()
    result = pipeline.run(evidence, on_round=on_round, progress=progress, cancel=cancel)
    ran = time.perf_counter()
    prepared = pipeline.prepare(evidence)
    tiles: list[tuple[np.ndarray | None, str]] = []
    if evidence.sketch is not None:
        tiles += [(evidence.sketch, "sketch"), (prepared.sketch, "sketch, aligned")]
    if evidence.lq is not None:
        tiles.append((prepared.lq, f"low-quality {prepared.lq.shape[0]}px"))
    if evidence.reference is not None:
        tiles.append((evidence.reference, "reference"))
    if evidence.text:
        tiles.append((None, evidence.text))
    seconds = {"load": round(loaded - start, 4), "loop": round(ran - loaded, 4)}
    provenance = make_provenance(
        pipeline, result, inputs=probe.paths(), text=probe.text, seconds=seconds, command=command
    )
    write_run(
        out,
        result,
        provenance,
        evidence_tiles=tiles,
        gallery_images=_gallery_images(pipeline, result),
    )
    return result
