"""The README demo: bundled FS2K sketches searched in a bundled gallery, offline.

``sdk/facefit/demo_data/`` (built by ``scripts/build_demo_data.py``) holds three
FS2K development-split sketches with their attribute sentences and a gallery of
24 aligned FS2K photo crops: the three true faces and 21 distractors. The gallery
is embedded when the demo starts (a second on a CPU); the loop then runs with the
shipped default generator. Credit: FS2K (MIT), see ``demo_data/SOURCES.md``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError, WeightsNotFoundError

__all__ = ["DEMO_DATA", "demo_gallery", "demo_probes", "require_default_model"]

DEMO_DATA = Path(__file__).resolve().parents[1] / "demo_data"


def require_default_model() -> Path:
    """The default generator's folder, or an error saying that none is installed."""
    from facefit.generator.loading import resolve_model_dir

    try:
        return resolve_model_dir("default")
    except WeightsNotFoundError as exc:
        raise WeightsNotFoundError(
            f"the demo needs the default generator model, and none is installed ({exc})"
        ) from None


def demo_probes() -> list[Any]:
    """The bundled probes as :class:`~facefit.pipeline.files.ProbeFiles`."""
    from facefit.pipeline.files import ProbeFiles

    with open(DEMO_DATA / "probes.csv", newline="", encoding="utf-8") as handle:
        return [
            ProbeFiles(id=row["id"], sketch=str(DEMO_DATA / row["sketch"]), text=row["text"])
            for row in csv.DictReader(handle)
        ]


def demo_gallery(encoder: Any, registry: Any = None) -> Any:
    """The bundled gallery, embedded with ``encoder`` (its crops are aligned already)."""
    from facefit.gallery import GalleryIndex
    from facefit.imaging.images import load_image
    from facefit.pipeline.loop import _resize

    listing = json.loads((DEMO_DATA / "gallery.json").read_text(encoding="utf-8"))["identities"]
    if not listing:
        raise InputError(f"{DEMO_DATA}: the demo gallery is empty")
    names = sorted(listing)
    paths = [str(DEMO_DATA / listing[n]) for n in names]
    crops = _resize(np.stack([load_image(p) for p in paths]), encoder.input_size)
    gallery = GalleryIndex.create(encoder, retriever="exact", registry=registry)
    gallery.add(encoder.embed(crops), names, sources=paths)
    return gallery
