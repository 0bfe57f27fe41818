"""The output folder: FS2K layout, one committed file per shard, and the merge.

::

    OUT/
      manifest.json        the job (settings, sha256 of inputs and model files, plugins),
                           then counts, drops, skips and timings once merged
      annotations.json     FS2K-format records: id, photo, sketch, style, + identity,
                           seed, identity_cosine, source, sample, prompt, domain
      photo/<name>.png     each used mugshot's aligned crop at the generator's size
      sketch/<name>_<k>.png  each kept sketch (sample k of the identity)
      units/shard-NNNNNN.json  one per finished shard: its records, drops and skips

Every file is written to a temporary name, flushed with fsync and renamed
(:func:`facefit.files.atomic_write_bytes`). A shard's unit file is written
last: it is the shard's commit. A shard without one is made again, and since its
batches and seeds are fixed, its images come out byte for byte the same.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from facefit.augment.plan import Job, Shard
from facefit.errors import InputError
from facefit.files import sha256_file

__all__ = ["ANNOTATIONS", "MANIFEST", "OutputFolder"]

MANIFEST = "manifest.json"
ANNOTATIONS = "annotations.json"
UNITS = "units"
FORMAT = "facefit-augment/1"
UNIT_FORMAT = "facefit-augment-unit/1"


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 image as PNG bytes (the same array always gives the same bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class OutputFolder:
    """One augmentation output folder; safe to share between processes of one job.

    Shard workers (local or Ray tasks) only write their own images and unit file;
    the manifest and the annotations are written by the process that runs the job.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- the job --------------------------------------------------------------------------

    def open(self, job: Job) -> bool:
        """Start ``job`` here, or resume it; True when it was started before.

        Refuses a folder that holds another job's manifest (naming what differs) or
        files that are not an augmentation output.
        """
        manifest_path = self.path / MANIFEST
        if manifest_path.is_file():
            existing = _read_json(manifest_path)
            if not isinstance(existing, dict) or existing.get("format") != FORMAT:
                raise InputError(
                    f"{self.path}: holds a {MANIFEST} that is not a facefit augmentation "
                    "manifest; choose another --out"
                )
            if existing.get("fingerprint") != job.fingerprint:
                why = describe_difference(existing.get("job") or {}, job.description)
                raise InputError(
                    f"{self.path}: holds a different augmentation job ({why}); rerun with "
                    "that job's settings to resume it, or choose another --out"
                )
            return True
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise InputError(
                f"{self.path}: exists and is not an augmentation output (no {MANIFEST}); "
                "choose a new or empty --out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_manifest(
            {
                "format": FORMAT,
                "status": "running",
                "fingerprint": job.fingerprint,
                "started": _now(),
                "job": job.description,
            }
        )
        return False

    def manifest(self) -> dict[str, Any]:
        data = _read_json(self.path / MANIFEST)
        if not isinstance(data, dict):
            raise InputError(f"{self.path / MANIFEST}: missing or unreadable")
        return data

    def write_manifest(self, data: dict[str, Any]) -> None:
        self.write_bytes(MANIFEST, json_bytes(data))

    # -- files ----------------------------------------------------------------------------

    def write_bytes(self, relative: str, data: bytes) -> dict[str, Any]:
        """Write ``data`` to ``OUT/relative`` atomically and durably; returns its sha256 and size."""
        from facefit.files import atomic_write_bytes

        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    def write_image(self, relative: str, image: np.ndarray) -> dict[str, Any]:
        return self.write_bytes(relative, png_bytes(image))

    def remove_leftovers(self) -> int:
        """Delete temporary files of writes that a killed process left; returns how many."""
        from facefit.files import TEMP_MARK

        removed = 0
        for folder in (self.path, *(self.path / d for d in ("photo", "sketch", UNITS))):
            if folder.is_dir():
                for path in folder.glob(f".*{TEMP_MARK}*"):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    # -- units ----------------------------------------------------------------------------

    def unit_path(self, shard: Shard) -> Path:
        return self.path / UNITS / f"{shard.name}.json"

    def read_unit(
        self, shard: Shard, fingerprint: str, *, check_files: bool = True, verify: bool = False
    ):
        """The committed unit of ``shard`` for this job, or None when it must be made.

        With ``check_files`` every file the unit lists must be there with its size;
        with ``verify`` also with its sha256 (reads every file).
        """
        unit = _read_json(self.unit_path(shard))
        if not isinstance(unit, dict) or unit.get("format") != UNIT_FORMAT:
            return None
        if unit.get("fingerprint") != fingerprint or unit.get("keys") != [
            m.key for m in shard.mugshots
        ]:
            return None
        if check_files or verify:
            for relative, info in unit.get("files", {}).items():
                path = self.path / relative
                try:
                    if path.stat().st_size != info["bytes"]:
                        return None
                    if verify and sha256_file(path) != info["sha256"]:
                        return None
                except (OSError, InputError):  # gone, unreadable or not a regular file
                    return None
        return unit

    def write_unit(self, shard: Shard, fingerprint: str, unit: dict[str, Any]) -> dict[str, Any]:
        """Commit a shard: its unit file, written after all of its images."""
        unit = {
            "format": UNIT_FORMAT,
            "fingerprint": fingerprint,
            "shard": shard.index,
            "keys": [m.key for m in shard.mugshots],
            **unit,
        }
        self.write_bytes(f"{UNITS}/{shard.name}.json", json_bytes(unit))
        return unit

    def pending(self, job: Job, *, verify: bool = False) -> list[Shard]:
        """The shards of ``job`` not committed yet, or whose files are missing or of
        the wrong size (with ``verify``: of the wrong sha256)."""
        return [s for s in job.shards if self.read_unit(s, job.fingerprint, verify=verify) is None]

    # -- the merge ------------------------------------------------------------------------

    def merge(self, job: Job, *, seconds: float, devices: Iterable[str] = ()) -> dict[str, Any]:
        """Write ``annotations.json`` and the complete ``manifest.json`` from the units.

        Returns the manifest. Fails when a shard has no committed unit. Temporary
        files left by killed writers are removed (every shard is finished by then).
        """
        units = []
        for shard in job.shards:
            unit = self.read_unit(shard, job.fingerprint, check_files=False)
            if unit is None:
                raise InputError(f"{self.path}: {shard.name} is not finished; run the job again")
            units.append(unit)
        records = [r for u in units for r in u["records"]]
        dropped = [d for u in units for d in u["dropped"]]
        skipped = [*job.skipped, *(s for u in units for s in u["skipped"])]
        per_identity: dict[str, dict[str, int]] = {}
        for identity in [
            *(m.identity for m in job.mugshots),
            *(s["identity"] for s in job.skipped),
        ]:
            entry = per_identity.setdefault(
                identity, {"mugshots": 0, "generated": 0, "kept": 0, "dropped": 0}
            )
            entry["mugshots"] += 1
        for record in records:
            per_identity[record["identity"]]["kept"] += 1
        for drop in dropped:
            per_identity[drop["identity"]]["dropped"] += 1
        for entry in per_identity.values():
            entry["generated"] = entry["kept"] + entry["dropped"]
        self.remove_leftovers()
        self.write_bytes(ANNOTATIONS, json_bytes(records))
        manifest = self.manifest()
        settings = job.settings
        manifest.update(
            {
                "status": "complete",
                "finished": _now(),
                "counts": {
                    "identities": len(per_identity),
                    "mugshots": len(job.mugshots) + len(job.skipped),
                    "mugshots_skipped": len(skipped),
                    "identities_without_sketches": sum(
                        1 for e in per_identity.values() if e["kept"] == 0
                    ),
                    "requested": _requested(job, len(per_identity)),
                    "generated": len(records) + len(dropped),
                    "kept": len(records),
                    "dropped": len(dropped),
                    "min_identity_cosine": settings.min_identity_cosine,
                },
                "per_style": _per_style(records, dropped),
                "per_identity": dict(sorted(per_identity.items())),
                "dropped": dropped,
                "skipped": skipped,
                "seeds": {
                    "seed": settings.seed,
                    "rule": "sha256(json [seed, identity, mugshot key, sample]) first 4 bytes "
                    "& 0x7fffffff; per-record seeds in annotations.json, dropped ones above",
                },
                "timings": {
                    "this_run_seconds": round(seconds, 3),
                    "shard_seconds": {
                        f"shard-{u['shard']:06d}": u.get("seconds", {}) for u in units
                    },
                    "generation_seconds_total": round(
                        sum(u.get("seconds", {}).get("total", 0.0) for u in units), 3
                    ),
                },
                "runtime": _runtime(devices, units),
            }
        )
        self.write_manifest(manifest)
        return manifest


def _per_style(records: list[dict], dropped: list[dict]) -> dict[str, dict[str, int]]:
    """Kept and dropped sketches by FS2K style (``-1``: the model's choice)."""
    out: dict[str, dict[str, int]] = {}
    for what, items in (("kept", records), ("dropped", dropped)):
        for item in items:
            entry = out.setdefault(str(item["style"]), {"kept": 0, "dropped": 0})
            entry[what] += 1
    return dict(sorted(out.items()))


def _requested(job: Job, identities: int) -> int:
    """Sketches the job asked for, counting mugshots that turned out unusable."""
    settings = job.settings
    if settings.per_mugshot:
        mugshots = len(job.mugshots) + len(job.skipped)
        return settings.per_mugshot * len(settings.variants) * mugshots
    return settings.per_identity * identities


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _runtime(devices: Iterable[str], units: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "devices": sorted({*devices, *(u.get("device", "?") for u in units)}),
        "hosts": sorted({u.get("host", "?") for u in units}),
    }


def describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two job descriptions, in words (for the refusal message)."""
    differences = []
    old_settings, new_settings = old.get("settings", {}), new.get("settings", {})
    for key in sorted(set(old_settings) | set(new_settings)):
        if old_settings.get(key) != new_settings.get(key):
            differences.append(
                f"{key} {old_settings.get(key)!r} there, {new_settings.get(key)!r} now"
            )
    if old.get("model") != new.get("model"):
        differences.append(f"generator files differ ({old.get('model', {}).get('path')})")
    if old.get("plugins") != new.get("plugins"):
        differences.append("plugin versions differ")
    old_inputs = {i["key"]: i.get("sha256") for i in old.get("inputs", [])}
    new_inputs = {i["key"]: i.get("sha256") for i in new.get("inputs", [])}
    if old_inputs != new_inputs:
        added = len(set(new_inputs) - set(old_inputs))
        removed = len(set(old_inputs) - set(new_inputs))
        changed = sum(
            1 for k in set(old_inputs) & set(new_inputs) if old_inputs[k] != new_inputs[k]
        )
        differences.append(f"inputs differ: {added} added, {removed} removed, {changed} changed")
    elif old.get("inputs") != new.get("inputs"):
        differences.append("input identities or paths differ")
    if not differences and old.get("facefit") != new.get("facefit"):
        differences.append(f"facefit {old.get('facefit')} there, {new.get('facefit')} now")
    return "; ".join(differences) or "its description differs"
