"""One probe from files to an output folder: load, run the loop, write everything."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facefit.types import Evidence, Result

__all__ = ["ProbeFiles", "run_probe_files"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeFiles:
    """A probe's evidence as files (any subset) and text."""

    sketch: str | None = None
    lq: str | None = None
    text: str | None = None
    reference: str | None = None
    id: str = "probe"
    extra: dict[str, Any] = field(default_factory=dict)
    allow_no_face: tuple[str, ...] = ()
    """Image modalities that may be used without a detected face (see :class:`~facefit.types.Evidence`)."""
    extra_sketches: tuple[str, ...] = ()
    """More sketches (other witnesses), after ``sketch``."""
    extra_lq: tuple[str, ...] = ()
    """More low-quality images, after ``lq``."""
    extra_texts: tuple[str, ...] = ()
    """More descriptions (other witnesses), after ``text``."""

    @property
    def texts(self) -> list[str]:
        """Every description: ``text``, then :attr:`extra_texts`."""
        return [t for t in (self.text, *self.extra_texts) if t is not None]

    def paths(self) -> dict[str, str]:
        """Every input file by name: ``sketch``, ``sketch.2``, …, ``lq``, ``lq.2``, …, ``reference``."""
        out = {
            m: str(p)
            for m, p in (("sketch", self.sketch), ("lq", self.lq), ("reference", self.reference))
            if p is not None
        }
        for modality, extra in (("sketch", self.extra_sketches), ("lq", self.extra_lq)):
            out.update({f"{modality}.{n}": str(p) for n, p in enumerate(extra, start=2)})
        return out

    @classmethod
    def from_lists(cls, sketches=(), lqs=(), texts=None, **fields: Any) -> ProbeFiles:
        """A probe from lists of sketch and low-quality image paths (first, then extra)
        and, where ``texts`` is given, of descriptions (else ``text=`` in ``fields``)."""
        sketches, lqs = [str(p) for p in sketches or ()], [str(p) for p in lqs or ()]
        if texts is not None:
            texts = [texts] if isinstance(texts, str) else list(texts)
            fields["text"] = texts[0] if texts else None
            fields["extra_texts"] = tuple(texts[1:])
        return cls(
            sketch=sketches[0] if sketches else None,
            lq=lqs[0] if lqs else None,
            extra_sketches=tuple(sketches[1:]),
            extra_lq=tuple(lqs[1:]),
            **fields,
        )

    def load(self) -> Evidence:
        files = {m: p for m, p in self.paths().items() if "." not in m}
        return Evidence(
            text=self.text,
            allow_no_face=self.allow_no_face,
            extra_sketches=self.extra_sketches,
            extra_lq=self.extra_lq,
            extra_texts=self.extra_texts,
            **files,
        ).require_any()


def _gallery_images(pipeline: Any, result: Result) -> dict[str, np.ndarray]:
    """Pictures of the top identities for the contact sheet, where the gallery kept a readable path."""
    from facefit.errors import InputError
    from facefit.imaging.images import load_image

    out = {}
    for match in result.top(6):
        if match.image_id and Path(match.image_id).is_file():
            try:
                out[match.identity] = load_image(match.image_id)
            except InputError:
                continue
    return out


def _evidence_tiles(evidence: Evidence, prepared: Any) -> list[tuple[np.ndarray | None, str]]:
    """The contact sheet's evidence pictures; one used as given says so in its caption."""
    flagged = {c.modality for c in prepared.flagged}

    def caption(modality: str, text: str) -> str:
        return f"AS GIVEN {text}" if modality in flagged else text

    tiles: list[tuple[np.ndarray | None, str]] = []
    if evidence.sketch is not None:
        tiles += [
            (evidence.sketch, "sketch"),
            (prepared.sketch, caption("sketch", "sketch, aligned")),
        ]
        tiles += [(s, f"sketch {n}") for n, s in enumerate(evidence.extra_sketches, start=2)]
    if evidence.lq is not None:
        tiles.append((prepared.lq, caption("lq", f"low-quality {prepared.lq.shape[0]}px")))
        tiles += [(q, f"low-quality {n}") for n, q in enumerate(evidence.extra_lq, start=2)]
    if evidence.reference is not None:
        tiles.append((evidence.reference, caption("reference", "reference")))
    texts = evidence.texts
    for n, text in enumerate(texts, start=1):
        tiles.append((None, text if len(texts) == 1 else f"({n}) {text}"))
    return tiles


def _fusion_provenance(pipeline: Any, result: Result) -> dict[str, Any]:
    """The fusion weights file and the sketch-matcher gallery a run used, for provenance."""
    from facefit.pipeline.provenance import sha256_file

    out: dict[str, Any] = {}
    path = getattr(pipeline.fusion, "path", None)
    out["fusion"] = {
        "weights": str(path) if path else None,
        "sha256": sha256_file(path) if path and Path(path).is_file() else None,
        **{k: v for k, v in result.provenance.get("fusion", {}).items() if k != "notes"},
    }
    sketches = pipeline.sketch_gallery
    if sketches is not None:
        out["sketch_gallery"] = {
            "path": str(sketches.path) if sketches.path else None,
            "encoder": str(sketches.encoder),
            "identities": sketches.num_identities,
        }
    return out


def _log_checks(prepared: Any) -> None:
    """One log line per image verdict: a warning for evidence used as given."""
    for check in prepared.checks:
        if check.flagged:
            log.warning("%s (%s): %s", check.modality, check.source, check.note)
        else:
            log.info("%s (%s): %s", check.modality, check.source, check.why)


def run_probe_files(
    pipeline: Any,
    probe: ProbeFiles,
    out: str | Path,
    *,
    on_round: Any = None,
    command: list[str] | None = None,
    progress: Any = None,
    cancel: Any = None,
    force: bool = False,
) -> Result:
    """Run the loop on one probe and write its output folder (see :mod:`.output`).

    ``out`` is checked first (:func:`~facefit.pipeline.output.check_out`: an earlier
    run's folder is replaced only with ``force``), then the evidence is judged
    (:mod:`.evidence`; unusable evidence raises before anything is generated).
    ``progress`` and ``cancel`` go to :meth:`Pipeline.run <facefit.pipeline.Pipeline.run>`;
    a cancelled run writes nothing and raises :class:`~facefit.pipeline.Cancelled`.
    """
    from facefit.pipeline.output import check_out, write_run
    from facefit.pipeline.provenance import make_provenance

    check_out(out, force=force)
    start = time.perf_counter()
    evidence = probe.load()
    prepared = pipeline.prepare(evidence)
    _log_checks(prepared)
    loaded = time.perf_counter()
    result = pipeline.run(evidence, on_round=on_round, progress=progress, cancel=cancel)
    ran = time.perf_counter()
    seconds = {"load": round(loaded - start, 4), "loop": round(ran - loaded, 4)}
    provenance = make_provenance(
        pipeline,
        result,
        inputs=probe.paths(),
        text=evidence.texts,
        seconds=seconds,
        command=command,
    )
    provenance["evidence"] = [c.to_dict() for c in prepared.checks]
    provenance["allow_no_face"] = list(evidence.allow_no_face)
    provenance.update(_fusion_provenance(pipeline, result))
    write_run(
        out,
        result,
        provenance,
        evidence_tiles=_evidence_tiles(evidence, prepared),
        gallery_images=_gallery_images(pipeline, result),
        checks=prepared.checks,
        force=force,
    )
    return result
