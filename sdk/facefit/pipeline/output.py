"""A run's output folder: candidate images, contact sheet, ``result.json``, ``provenance.json``.

::

    OUT/
      round0/cand0.png …        every candidate of every round (the generator's aligned crop)
      contact_sheet.png         evidence | one row per round | the ranked identities
      result.json               ranked identities, fused scores, per-round trace
      provenance.json           inputs, model, gallery, plugins, seeds, timings

``result.json`` holds no timings or paths that change from run to run, so a re-run
with the same inputs and settings gives the same bytes. Evidence used without a
verified face (:mod:`facefit.pipeline.evidence`) is listed under ``"caution"`` with
``"confidence": "low"``, and shown on a red band across the contact sheet.

:func:`write_run` writes into a temporary sibling folder and renames it into place:
a folder named ``OUT`` is always complete. It never replaces an earlier run's
folder unless told to (``force``, ``facefit generate --force``), and never replaces
a folder that is not a facefit output; :func:`check_out` says so before a run starts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.files import replaced_dir
from facefit.types import Candidate, Match, Result

__all__ = ["cautions", "check_out", "result_to_dict", "write_run"]

RESULT_FORMAT = "facefit-result/1"
CELL = 96
CAUTION_COLOUR = (200, 0, 0)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _match(m: Match) -> dict[str, Any]:
    data = {"rank": m.rank, "identity": m.identity, "score": m.score, "image": m.image_id}
    if m.probability is not None or m.sources:
        data["probability"] = m.probability
        data["sources"] = {s: _finite(v) for s, v in m.sources.items()}
    return data


def _round_added(trace: Any, before: tuple[Match, ...]) -> dict[str, Any]:
    """What one round changed in the fused ranking: the top, its probability, the top 5."""
    now = trace.fused
    if not now:
        return {}
    top, old = now[0], (before[0] if before else None)
    ids, old_ids = [m.identity for m in now[:5]], [m.identity for m in before[:5]]
    return {
        "top": top.identity,
        "top_probability": top.probability,
        "top_changed": old is None or old.identity != top.identity,
        "top_probability_change": (
            None
            if old is None or top.probability is None or old.probability is None
            else round(top.probability - old.probability, 6)
        ),
        "entered_top5": [i for i in ids if i not in old_ids],
        "left_top5": [i for i in old_ids if i not in ids],
    }


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


def cautions(result: Result) -> tuple[str, ...]:
    """The notes of evidence used as given (without a verified face), in order."""
    from facefit.pipeline.evidence import FLAG

    return tuple(n for n in result.notes if f": {FLAG} " in n)


def result_to_dict(result: Result, checks: Any = None) -> dict[str, Any]:
    """The result as JSON-ready data (no timings: see the module doc).

    ``checks`` (the :class:`~facefit.pipeline.evidence.EvidenceCheck` of each image,
    from :meth:`Pipeline.prepare <facefit.pipeline.Pipeline.prepare>`) adds the
    ``"evidence"`` verdicts.
    """
    flags = cautions(result)
    data: dict[str, Any] = {
        "format": RESULT_FORMAT,
        "confidence": "low" if flags else "normal",
        "caution": list(flags),
    }
    if checks is not None:
        data["evidence"] = [c.to_dict() for c in checks]
    fusion = result.provenance.get("fusion")
    if fusion:
        data["no_likely_match"] = result.no_likely_match
        data["fusion"] = fusion
    before = tuple(result.provenance.get("direct_matches", ()))
    if fusion:
        data["direct_matches"] = [_match(m) for m in before]
    rounds = []
    for t in result.rounds:
        rounds.append(
            {
                "round": t.round,
                "reference": t.reference,
                "notes": list(t.notes),
                "matches": [_match(m) for m in t.matches],
                "fused": [_match(m) for m in t.fused],
                "added": _round_added(t, before),
                "candidates": [_candidate(c) for c in t.candidates],
            }
        )
        before = t.fused
    return {
        **data,
        "matches": [_match(m) for m in result.matches],
        "stopped": result.provenance.get("stopped"),
        "rounds": rounds,
    }


def _tile(image: np.ndarray | None, caption: str, colour: Any = (0, 0, 0)) -> Any:
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
        draw.text((2, (CELL if image is not None else 2) + 12 * i), line[:16], fill=colour)
    return tile


def _ranked_caption(m: Match) -> str:
    chance = "" if m.probability is None else f" p={m.probability:.2f}"
    return f"#{m.rank} {m.identity} {m.score:.3f}{chance}"


def _stack(top: Any, bottom: Any) -> Any:
    from PIL import Image

    both = Image.new("RGB", (top.width, top.height + bottom.height), "white")
    both.paste(top, (0, 0))
    both.paste(bottom, (0, top.height))
    return both


def _caution_band(flags: tuple[str, ...], width: int, headline: str | None = None) -> Any:
    """A red band naming the evidence used as given (or saying ``headline``), for the top
    of the contact sheet."""
    from PIL import Image, ImageDraw

    lines = [headline or "CAUTION: evidence used without a verified face; the ranking rests on it"]
    lines += [f"- {n}" for n in flags]
    chars = max(16, width // 6)
    wrapped = [line[i : i + chars] for line in lines for i in range(0, len(line), chars)]
    band = Image.new("RGB", (width, 6 + 12 * len(wrapped)), CAUTION_COLOUR)
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(wrapped):
        draw.text((4, 3 + 12 * i), line, fill=(255, 255, 255))
    return band


def contact_sheet(
    result: Result,
    evidence_tiles: list[tuple[np.ndarray | None, str]],
    gallery_images: dict[str, np.ndarray],
) -> Any:
    """One picture of the run: evidence, each round's candidates, the top identities.

    Evidence used as given (see :func:`cautions`) puts a red band on top; such an
    evidence tile's caption should say so (``files.run_probe_files`` marks it).
    """
    from PIL import Image

    rows = [
        [
            _tile(img, cap, CAUTION_COLOUR if "AS GIVEN" in cap else (0, 0, 0))
            for img, cap in evidence_tiles
        ]
    ]
    for trace in result.rounds:
        where = trace.reference or "evidence only"
        caption = f"round {trace.round}: {where}"
        if trace.fused:  # what the round added: the fused top after it
            top = trace.fused[0]
            chance = "" if top.probability is None else f" p={top.probability:.2f}"
            caption = f"round {trace.round} -> top {top.identity}{chance}; {where}"
        row = [_tile(None, caption)]
        for c in trace.candidates:
            top = c.matches[0].identity if c.matches else "-"
            mark = "x " if c.rejected else ""
            row.append(_tile(c.image, f"{mark}c{c.index} {c.consistency:.2f} {top}"))
        rows.append(row)
    rows.append(
        [_tile(None, "ranked identities (evidence and rounds fused)")]
        + [_tile(gallery_images.get(m.identity), _ranked_caption(m)) for m in result.top(6)]
    )
    width = max(len(r) for r in rows) * CELL
    flags = cautions(result)
    band = _caution_band(flags, width) if flags else None
    if result.no_likely_match:
        fusion = result.provenance["fusion"]
        line = (
            f"NO LIKELY MATCH: every identity's probability is below "
            f"{fusion['no_match_threshold']:g} (best {fusion['top_probability']:.2f}); "
            "the gallery probably does not hold this person"
        )
        extra = _caution_band((), width, line)
        band = extra if band is None else _stack(band, extra)
    top = band.height if band is not None else 0
    sheet = Image.new("RGB", (width, top + len(rows) * (CELL + 24)), "white")
    if band is not None:
        sheet.paste(band, (0, 0))
    for y, row in enumerate(rows):
        for x, tile in enumerate(row):
            sheet.paste(tile, (x * CELL, top + y * (CELL + 24)))
    return sheet


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def check_out(out: str | Path, *, force: bool = False, flag: str = "--force") -> Path:
    """Refuse ``out`` when it holds anything, unless ``force`` and it is a facefit output.

    Call it before a run starts, so no work is lost to a folder that would be
    refused. A folder that is not a facefit output (no ``provenance.json``) is
    refused even with ``force``: the run would delete what it holds.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder; choose a new --out folder")
    if not out.is_dir() or not any(out.iterdir()):
        return out
    if not (out / "provenance.json").is_file():
        raise InputError(
            f"--out {out}: exists, is not empty and is not a facefit output folder; "
            "choose a new --out folder"
        )
    if not force:
        raise InputError(
            f"--out {out}: holds an earlier run's output; choose a new --out folder, "
            f"or pass {flag} to replace it"
        )
    return out


def write_run(
    out: str | Path,
    result: Result,
    provenance: dict[str, Any],
    *,
    evidence_tiles: list[tuple[np.ndarray | None, str]],
    gallery_images: dict[str, np.ndarray] | None = None,
    checks: Any = None,
    force: bool = False,
) -> Path:
    """Write the output folder atomically; return its path.

    An earlier run's folder is replaced only with ``force`` (see :func:`check_out`);
    ``checks`` go to ``result.json`` (see :func:`result_to_dict`).
    """
    from facefit.imaging.images import save_image

    out = check_out(out, force=force)
    with replaced_dir(out) as tmp:
        for c in result.candidates:
            save_image(tmp / f"round{c.round}" / f"cand{c.index}.png", c.image)
        sheet = contact_sheet(result, evidence_tiles, gallery_images or {})
        sheet.save(tmp / "contact_sheet.png")
        _write_json(tmp / "result.json", result_to_dict(result, checks))
        _write_json(tmp / "provenance.json", provenance)
    return out
