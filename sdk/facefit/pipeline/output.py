"""A run's output folder: candidate images, contact sheet, ``result.json``, ``provenance.json``.

::

    OUT/
      round0/cand0.png …        every candidate of every round (the generator's aligned crop)
      contact_sheet.png         evidence | one row per round | the ranked identities
      result.json               ranked identities, fused scores, per-round trace
      provenance.json           inputs, model, gallery, plugins, seeds, timings

``result.json`` holds no timings or paths that change from run to run, so a re-run
with the same inputs and settings gives the same bytes. :func:`write_run` writes
into a temporary sibling folder and renames it into place: a folder named ``OUT``
is always complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.types import Candidate, Match, Result

__all__ = ["result_to_dict", "write_run"]

RESULT_FORMAT = "facefit-result/1"
CELL = 96


def _match(m: Match) -> dict[str, Any]:
    return {"rank": m.rank, "identity": m.identity, "score": m.score, "image": m.image_id}


def _candidate(c: Candidate) -> dict[str, Any]:
    return {
        "index": c.index,
        "image": f"round{c.round}/cand{c.index}.png",
        "seed": c.seed,
        "rejected": c.rejected,
        "evidence_scores": dict(c.evidence_scores),
        "consistency": round(c.consistency, 6),
        "matches": [_match(m) for m in c.matches],
    }


def result_to_dict(result: Result) -> dict[str, Any]:
    """The result as JSON-ready data (no timings: see the module doc)."""
    return {
        "format": RESULT_FORMAT,
        "matches": [_match(m) for m in result.matches],
        "stopped": result.provenance.get("stopped"),
        "rounds": [
            {
                "round": t.round,
                "reference": t.reference,
                "notes": list(t.notes),
                "matches": [_match(m) for m in t.matches],
                "candidates": [_candidate(c) for c in t.candidates],
            }
            for t in result.rounds
        ],
    }


def _tile(image: np.ndarray | None, caption: str) -> Any:
    from PIL import Image, ImageDraw

    tile = Image.new("RGB", (CELL, CELL + 24), "white")
    if image is not None:
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        picture = Image.fromarray(array)
        resample = (
            Image.Resampling.NEAREST if max(array.shape[:2]) < 32 else Image.Resampling.LANCZOS
        )
        scale = (CELL - 4) / max(array.shape[:2])
        size = (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale)))
        picture = picture.resize(size, resample)
        tile.paste(picture, (2 + (CELL - 4 - size[0]) // 2, 2 + (CELL - 4 - size[1]) // 2))
    draw = ImageDraw.Draw(tile)
    words, lines = caption.split(), [""]
    for word in words:
        if len(lines[-1]) + len(word) + 1 > 16 and lines[-1]:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    for i, line in enumerate(lines[: 2 if image is not None else 9]):
        draw.text((2, (CELL if image is not None else 2) + 12 * i), line[:16], fill=(0, 0, 0))
    return tile


def contact_sheet(
    result: Result,
    evidence_tiles: list[tuple[np.ndarray | None, str]],
    gallery_images: dict[str, np.ndarray],
) -> Any:
    """One picture of the run: evidence, each round's candidates, the top identities."""
    from PIL import Image

    rows = [[_tile(img, cap) for img, cap in evidence_tiles]]
    for trace in result.rounds:
        row = [_tile(None, f"round {trace.round}: {trace.reference or 'evidence only'}")]
        for c in trace.candidates:
            top = c.matches[0].identity if c.matches else "-"
            mark = "x " if c.rejected else ""
            row.append(_tile(c.image, f"{mark}c{c.index} {c.consistency:.2f} {top}"))
        rows.append(row)
    rows.append(
        [_tile(None, "ranked identities (fused over rounds)")]
        + [
            _tile(gallery_images.get(m.identity), f"#{m.rank} {m.identity} {m.score:.3f}")
            for m in result.top(6)
        ]
    )
    width = max(len(r) for r in rows) * CELL
    sheet = Image.new("RGB", (width, len(rows) * (CELL + 24)), "white")
    for y, row in enumerate(rows):
        for x, tile in enumerate(row):
            sheet.paste(tile, (x * CELL, y * (CELL + 24)))
    return sheet


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_run(
    out: str | Path,
    result: Result,
    provenance: dict[str, Any],
    *,
    evidence_tiles: list[tuple[np.ndarray | None, str]],
    gallery_images: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write the output folder atomically (replacing an older one); return its path."""
    from facefit.images import save_image

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "provenance.json").is_file():
        raise InputError(
            f"{out}: exists and is not a facefit output folder; choose a new --out folder"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for c in result.candidates:
        save_image(tmp / f"round{c.round}" / f"cand{c.index}.png", c.image)
    contact_sheet(result, evidence_tiles, gallery_images or {}).save(tmp / "contact_sheet.png")
    _write_json(tmp / "result.json", result_to_dict(result))
    _write_json(tmp / "provenance.json", provenance)
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
    return out
