"""Many probes in one run, resumable: ``facefit generate --manifest probes.csv --out OUT``.

The manifest is a CSV with a header; columns ``id`` (required, unique, used as the
output folder name) and any of ``sketch``, ``lq``, ``reference`` (image paths,
relative to the manifest's folder; a ``sketch`` or ``lq`` cell may list several,
separated by ``;``) and ``text``. More descriptions (other witnesses) go in columns
``text.2``, ``text.3``, … (a description may itself hold ``;``, so text cells are not
split); an empty cell is no description. Each probe's output goes to
``OUT/<id>/`` and is written atomically (:func:`facefit.pipeline.output.write_run`),
so after an interruption a folder either holds a complete result or does not
exist. An ``OUT`` that already holds anything is refused before any probe runs,
unless ``resume`` (skip the complete probes, clean up half-written leftovers:
``--resume``) or ``force`` (run every probe again and replace its folder:
``--force``). A probe whose evidence cannot be used is reported and left for the
next run.
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facefit.errors import InputError
from facefit.files import TEMP_MARK
from facefit.pipeline.files import ProbeFiles, run_probe_files

__all__ = ["BatchReport", "check_batch_out", "read_manifest", "run_batch"]

log = logging.getLogger(__name__)

COLUMNS = ("id", "sketch", "lq", "text", "reference")
LIST_SEPARATOR = ";"
"""Separates several files in a ``sketch`` or ``lq`` cell (several witnesses or cameras)."""
TEXT_COLUMN = re.compile(r"^text\.([2-9]|[1-9][0-9]+)$")
"""More descriptions: ``text.2``, ``text.3``, … after ``text``."""
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
    unknown = {c for c in set(header) - set(COLUMNS) if not TEXT_COLUMN.match(c or "")}
    if "id" not in header or unknown:
        raise InputError(
            f"{path}: manifest columns must be id and any of sketch, lq, text (text.2, "
            "text.3, … for more descriptions), reference"
            + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "; 'id' is missing")
        )
    text_columns = [c for c in header if TEXT_COLUMN.match(c or "")]
    probes, seen = [], set()
    for line, row in enumerate(rows, start=2):
        probe_id = (row.get("id") or "").strip()
        if not SAFE_ID.match(probe_id) or probe_id in seen:
            raise InputError(
                f"{path}, line {line}: id {probe_id!r} must be unique and made of letters, "
                "digits, '.', '_' or '-' (it names the output folder)"
            )
        seen.add(probe_id)
        files: dict[str, list[str]] = {}
        for modality in ("sketch", "lq", "reference"):
            files[modality] = []
            for value in (row.get(modality) or "").split(LIST_SEPARATOR):
                if not value.strip():
                    continue
                file = path.parent / value.strip()
                if not file.is_file():
                    raise InputError(f"{path}, line {line}: {modality} file {file} not found")
                files[modality].append(str(file))
        if len(files["reference"]) > 1:
            raise InputError(f"{path}, line {line}: give one reference face, not a list")
        columns = ["text", *sorted(text_columns, key=lambda c: int(c.partition(".")[2]))]
        texts = [t for t in ((row.get(c) or "").strip() for c in columns) if t]
        if not any(files.values()) and not texts:
            raise InputError(f"{path}, line {line}: probe {probe_id!r} has no evidence")
        reference = files["reference"][0] if files["reference"] else None
        probes.append(
            ProbeFiles.from_lists(
                files["sketch"], files["lq"], texts, id=probe_id, reference=reference
            )
        )
    return probes


def check_batch_out(out: str | Path, *, resume: bool = False, force: bool = False) -> Path:
    """Refuse a batch ``out`` that holds anything unless ``resume`` or ``force`` (not both)."""
    out = Path(out)
    if resume and force:
        raise InputError("give --resume (skip complete probes) or --force (redo them), not both")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder; choose a new --out folder")
    if out.is_dir() and any(out.iterdir()) and not (resume or force):
        raise InputError(
            f"--out {out}: already holds output; pass --resume to run only the probes not "
            "complete there, or --force to run every probe again and replace its folder"
        )
    return out


def _probe_progress(bar: Any, probe_id: str) -> Any:
    """A probe's progress: log lines (``-v``) and the batch bar's postfix."""
    from facefit.pipeline.progress import ProgressLog, progress_to

    def postfix(progress: Any) -> None:
        step = f" {progress.step}/{progress.steps}" if progress.stage == "sample" else ""
        where = f"round {progress.round + 1}/{progress.rounds} {progress.stage}{step}"
        bar.set_postfix_str(f"{probe_id} {where}")

    return progress_to(ProgressLog(prefix=f"{probe_id}: "), postfix if not bar.disable else None)


def run_batch(
    pipeline: Any,
    probes: list[ProbeFiles],
    out: str | Path,
    *,
    progress: bool = True,
    after_probe: Callable[[str], None] | None = None,
    resume: bool = False,
    force: bool = False,
) -> BatchReport:
    """Run the probes into ``out``; see the module doc for ``resume`` and ``force``."""
    from tqdm import tqdm

    out = check_batch_out(out, resume=resume, force=force)
    out.mkdir(parents=True, exist_ok=True)
    # a run killed while writing (".*.partial-*": what versions before facefit.files left)
    for leftover in [*out.glob(f".*{TEMP_MARK}*"), *out.glob(".*.partial-*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    report = BatchReport()
    bar = tqdm(probes, desc="probes", unit="probe", disable=not progress)
    for probe in bar:
        target = out / probe.id
        if resume and (target / "result.json").is_file():
            report.skipped.append(probe.id)
            log.info("%s: complete in %s, skipped", probe.id, target)
            continue
        bar.set_postfix_str(probe.id)
        try:
            run_probe_files(
                pipeline, probe, target, progress=_probe_progress(bar, probe.id), force=force
            )
        except InputError as exc:
            report.failed.append((probe.id, str(exc)))
            log.warning("%s: failed: %s", probe.id, exc)
            continue
        report.done.append(probe.id)
        if after_probe is not None:
            after_probe(probe.id)
    return report
