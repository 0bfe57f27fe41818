"""Many probes in one run, resumable: ``facefit generate --manifest probes.csv --out OUT``.

The manifest is a CSV with a header; columns ``id`` (required, unique, used as the
output folder name) and any of ``sketch``, ``lq``, ``reference`` (image paths,
relative to the manifest's folder) and ``text``. Each probe's output goes to
``OUT/<id>/`` and is written atomically (:func:`facefit.pipeline.output.write_run`),
so after an interruption a folder either holds a complete result or does not
exist; a re-run skips the complete ones and cleans up half-written leftovers.
A probe whose evidence cannot be used is reported and left for the next run.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facefit.errors import InputError
from facefit.pipeline.files import ProbeFiles, run_probe_files

__all__ = ["BatchReport", "read_manifest", "run_batch"]

COLUMNS = ("id", "sketch", "lq", "text", "reference")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class BatchReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Probes already complete from an earlier run."""
    failed: list[tuple[str, str]] = field(default_factory=list)


def read_manifest(path: str | Path) -> list[ProbeFiles]:
    """The probes of a manifest CSV, checked up front (ids, columns, files exist)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            header = rows[0].keys() if rows else []
    except OSError as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from None
    if not rows:
        raise InputError(
            f"{path}: the manifest has no probes (a header line, then one probe a line)"
        )
    unknown = set(header) - set(COLUMNS)
    if "id" not in header or unknown:
        raise InputError(
            f"{path}: manifest columns must be id and any of sketch, lq, text, reference"
            + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "; 'id' is missing")
        )
    probes, seen = [], set()
    for line, row in enumerate(rows, start=2):
        probe_id = (row.get("id") or "").strip()
        if not SAFE_ID.match(probe_id) or probe_id in seen:
            raise InputError(
                f"{path}, line {line}: id {probe_id!r} must be unique and made of letters, "
                "digits, '.', '_' or '-' (it names the output folder)"
            )
        seen.add(probe_id)
        files: dict[str, str | None] = {}
        for modality in ("sketch", "lq", "reference"):
            value = (row.get(modality) or "").strip()
            files[modality] = None
            if value:
                file = path.parent / value
                if not file.is_file():
                    raise InputError(f"{path}, line {line}: {modality} file {file} not found")
                files[modality] = str(file)
        text = (row.get("text") or "").strip() or None
        if not any(files.values()) and text is None:
            raise InputError(f"{path}, line {line}: probe {probe_id!r} has no evidence")
        probes.append(ProbeFiles(id=probe_id, text=text, **files))
    return probes


def run_batch(
    pipeline: Any,
    probes: list[ProbeFiles],
    out: str | Path,
    *,
    progress: bool = True,
    after_probe: Callable[[str], None] | None = None,
) -> BatchReport:
    """Run every probe not already complete in ``out``; see the module doc."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(".*.partial-*"):  # a run killed while writing
        shutil.rmtree(leftover, ignore_errors=True)
    report = BatchReport()
    bar = tqdm(probes, desc="probes", unit="probe", disable=not progress)
    for probe in bar:
        target = out / probe.id
        if (target / "result.json").is_file():
            report.skipped.append(probe.id)
            continue
        bar.set_postfix_str(probe.id)
        try:
            run_probe_files(pipeline, probe, target)
        except InputError as exc:
            report.failed.append((probe.id, str(exc)))
            continue
        report.done.append(probe.id)
        if after_probe is not None:
            after_probe(probe.id)
    return report
