"""Contact sheets: what a mode saw and answered for the first probes of each set.

One row per probe: its evidence (sketch, low-quality image marked when made from
the true photo, photo, text), the generated candidates of generating modes, the true
identity's gallery photo (blue frame), then the top-3 gallery hits with score and
identity, framed green when right, orange when another identity of the true person
(right at person level only) and red when wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facefit.evaluation.runner import EvalRun, ModeResult

__all__ = ["contact_sheet"]

CELL = 96
LABEL = 26


def _tile(image: np.ndarray | None, caption: str, colour: tuple[int, int, int] | None = None):
    from PIL import Image, ImageDraw

    tile = Image.new("RGB", (CELL, CELL + LABEL), "white")
    if image is not None:
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        picture = Image.fromarray(array)
        picture.thumbnail((CELL - 6, CELL - 6), Image.Resampling.LANCZOS)
        if min(array.shape[:2]) < 24:  # a tiny low-quality input: show its pixels
            picture = Image.fromarray(array).resize((CELL - 6, CELL - 6), Image.Resampling.NEAREST)
        tile.paste(
            picture, (3 + (CELL - 6 - picture.width) // 2, 3 + (CELL - 6 - picture.height) // 2)
        )
    draw = ImageDraw.Draw(tile)
    if colour is not None:
        draw.rectangle([0, 0, CELL - 1, CELL - 1], outline=colour, width=3)
    if image is None:  # a text cell: the caption fills the tile
        for i, line in enumerate(_wrap(caption, 16)[:9]):
            draw.text((3, 3 + 12 * i), line, fill=(0, 0, 0))
        return tile
    for i, line in enumerate(_wrap(caption, 16)[:2]):
        draw.text((3, CELL + 1 + 12 * i), line, fill=(0, 0, 0))
    return tile


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return [ln[:width] for ln in lines]


def contact_sheet(
    run: EvalRun,
    benchmark: str,
    mode: str,
    path: str | Path,
    rows_per_set: int = 4,
    candidates: int = 4,
) -> Path | None:
    """The first probes of each probe set for one mode; None when nothing to show."""
    from PIL import Image

    from facefit.imaging.images import load_image

    results = [
        r for r in run.results if r.benchmark == benchmark and r.mode == mode and r.status == "ok"
    ]
    manifest = run.manifests[benchmark]
    rows = []
    for r in results:
        gallery = run.galleries[benchmark][r.encoder]
        for outcome in [o for o in r.outcomes if o.evidence is not None][:rows_per_set]:
            rows.append(_row(r, outcome, manifest, gallery, candidates, load_image))
    if not rows:
        return None
    width = max(sum(t.width for t in row) for row in rows)
    sheet = Image.new("RGB", (width, sum(row[0].height for row in rows)), "white")
    y = 0
    for row in rows:
        x = 0
        for tile in row:
            sheet.paste(tile, (x, y))
            x += tile.width
        y += row[0].height
    path = Path(path)
    sheet.save(path)
    return path


def _row(result: ModeResult, outcome, manifest, gallery, n_candidates: int, load_image) -> list:
    evidence = outcome.evidence
    tiles = [_tile(None, f"{result.mode} · {result.probe_set} · probe {outcome.probe.id}")]
    sketches, frames = evidence.images("sketch"), evidence.images("lq")
    for n, sketch in enumerate(sketches, start=1):  # several witnesses: each one's
        tiles.append(_tile(sketch, "sketch" if len(sketches) == 1 else f"sketch {n}"))
    for n, frame in enumerate(frames, start=1):
        size = result.lq_made_at
        caption = f"lq {size}x{size} (made)" if size else "lq"
        tiles.append(_tile(frame, caption if len(frames) == 1 else f"{caption} {n}"))
    if evidence.reference is not None:
        tiles.append(_tile(evidence.reference, "photo"))
    for text in evidence.texts:
        tiles.append(_tile(None, text))
    for i, image in enumerate(outcome.candidates[:n_candidates]):
        tiles.append(_tile(image, f"candidate {i}"))
    identities = gallery["identities"]
    persons = manifest.persons
    true_person = persons.get(outcome.probe.identity)
    true_paths = [g.path for g in manifest.gallery if g.identity == outcome.probe.identity]
    true_image = load_image(manifest.path(true_paths[0])) if true_paths else None
    tiles.append(_tile(true_image, f"true: {outcome.probe.identity}", (40, 40, 200)))
    if outcome.failed:
        tiles.append(_tile(None, f"failed: {outcome.error or ''}"))
    for rank, (column, score, image_index) in enumerate(outcome.top[:3], start=1):
        identity = identities[column]
        if image_index >= 0:
            hit_path = gallery["image_paths"][image_index]
        else:
            hit_path = next(
                (g.path for g in manifest.full_gallery() if g.identity == identity), None
            )
        image = load_image(manifest.path(hit_path)) if hit_path else None
        caption, colour = f"#{rank} {score:.2f} {identity}", (200, 0, 0)
        if identity == outcome.probe.identity:
            colour = (0, 160, 0)
        elif true_person is not None and persons.get(identity) == true_person:
            caption, colour = f"#{rank} {score:.2f} same person", (230, 140, 0)
        tiles.append(_tile(image, caption, colour))
    return tiles
