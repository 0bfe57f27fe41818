"""The gates' sample grid for the docs: what each gate asks of a model, one row each.

Per model, under a header with its name: the same artist's sketch under different
descriptions (sketch | faces), identity only (photo | face from its embedding, three
persons), and reference → sketch (photo | style 0 | style 1 | style 2 | the
artist's own sketch) for two pairs. Everything from the development split, made by
the same :class:`GateRunner` path as the gates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facefit.imaging.labels import text_box

if TYPE_CHECKING:
    from facefit.generator.gates.devset import DevData
    from facefit.generator.gates.runner import GateRunner

__all__ = ["gates_grid"]

LABEL_WIDTH = 150
DESCRIPTIONS = 6


def _described(data: DevData, count: int) -> list[int]:
    """Pairs whose (gender, hair colour) differ from each other, for varied descriptions."""
    seen, chosen = set(), []
    for i, labels in enumerate(data.fs2k.labels):
        key = (labels.get("gender"), labels.get("hair_color"))
        if key not in seen:
            seen.add(key)
            chosen.append(i)
        if len(chosen) == count:
            break
    return chosen


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def _model_rows(runner: GateRunner, data: DevData) -> list[tuple[str, list[np.ndarray]]]:
    from facefit.generator.conditions import SKETCH_STYLES, sketch_domain
    from facefit.imaging.faces import resize_aligned

    size = runner.image_size
    fs2k, celeba = data.fs2k, data.celeba
    photos = fs2k.photos.crop(size)
    sketches = [resize_aligned(_rgb(s), size) for s in fs2k.sketches]
    rows = []
    sketch = fs2k.sketches[0]
    texts = [fs2k.sentences[i] for i in _described(data, DESCRIPTIONS)]
    faces = runner.sample([runner.conditions(sketch=sketch, text=t) for t in texts])
    rows.append(("sketch + descriptions", [sketches[0], *faces]))

    people: dict[str, int] = {}
    for i, person in enumerate(celeba.persons):
        people.setdefault(person, i)
    probes = list(people.values())[:3]
    vectors = runner.identities(celeba.crop(runner.identity_encoder.input_size)[probes])
    made = runner.sample([runner.conditions(identity=v) for v in vectors])
    pairs = [img for k in range(len(probes)) for img in (celeba.crop(size)[probes[k]], made[k])]
    rows.append(("identity only", pairs))

    for item in (0, len(fs2k) // 2)[: len(fs2k)]:
        vector = runner.identities(fs2k.photos.crop(runner.identity_encoder.input_size)[[item]])[0]
        evidence = [
            runner.conditions(identity=vector, face=photos[item], domain=sketch_domain(s))
            for s in range(SKETCH_STYLES)
        ]
        made = runner.sample(evidence)
        rows.append(("reference > sketch", [photos[item], *made, sketches[item]]))
    return rows


def gates_grid(
    runners: Sequence[tuple[str, GateRunner]], data: DevData, path: str | Path, *, scale: int = 2
) -> Path:
    """Write the grid PNG for each ``(name, runner)`` to ``path``; returns the path."""
    from PIL import Image

    from facefit.files import atomic_write_bytes

    blocks = []
    for name, runner in runners:
        size = runner.image_size * scale
        rows = _model_rows(runner, data)
        width = max(len(cells) for _, cells in rows)
        block = [text_box(f"model: {name}", LABEL_WIDTH + width * size, size // 2, bold=True)]
        for label, cells in rows:
            big = [np.repeat(np.repeat(_rgb(c), scale, 0), scale, 1) for c in cells]
            big += [np.full((size, size, 3), 255, np.uint8)] * (width - len(big))
            block.append(np.concatenate([text_box(label, LABEL_WIDTH, size), *big], axis=1))
        blocks.append(np.concatenate(block, axis=0))
    width = max(b.shape[1] for b in blocks)
    padded = [
        np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks
    ]
    grid = np.concatenate(padded, axis=0)
    import io

    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path
