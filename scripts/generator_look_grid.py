"""The "Look" grid of generator v2 (issue 24, gate 6): labelled faces a reader can judge.

    python scripts/generator_look_grid.py [--model sdk/facefit/generator/default] \\
        --out docs/images/generator_look.png [--force] [--scale 3] [--rounds 3] \\
        [--candidates 4] [--steps 25] [--guidance 3] [--seed 0] [--backend auto] [--threads 1]

Four sections, each with labelled columns and rows:

1. **Same sketch, different descriptions.** Each bundled demo sketch, sampled from
   the sketch alone and under six descriptions (written here, FS2K's wording), all
   from the same seed, so only the text differs between the columns.
2. **Identity only.** The identity embedding (the generator's identity encoder: SFace
   for the shipped models) of demo gallery photos and nothing else: no sketch, no text,
   no reference image. Two seeds per person.
3. **Reference photo → sketch in FS2K's 3 styles.** The same persons' photos given as
   the reference (identity embedding and, for models that take it, the aligned image),
   rendered in ``sketch-style0/1/2``; the artist's own FS2K sketch below where the demo
   data has it.
4. **The loop's rounds.** ``Pipeline.run`` on the first demo probe (sketch + text)
   against the 24-face demo gallery, every round run (``stop_when_stable = 0``): each
   round's reference face (from the previous round; none in round 0), its candidates
   and the fused top identity after it. The evidence row shows the sketch and the true
   face, which the loop never sees.

It shows only generated faces and the credited FS2K demo crops of
``sdk/facefit/demo_data`` (see its SOURCES.md): no other data-set image. Everything goes
through the SDK's public parts: a :class:`~facefit.pipeline.Pipeline` (its sampler,
denoiser backend, ``auto`` by default: ONNX Runtime on the CPU where installed,
conditioners and identity encoder) and :mod:`facefit.generator.conditions`. Faces are
upscaled by ``--scale`` with nearest-neighbour resampling (each pixel a block, nothing
smoothed or invented). The PNG is written atomically; an existing one is kept unless
``--force``.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facefit.imaging.labels import text_box

DESCRIPTIONS: tuple[tuple[str, str], ...] = (
    ("man, black hair", "a man with black hair, brown eyes, red lips and fair skin"),
    ("man, golden hair", "a man with golden hair, light eyes, pink lips and very fair skin"),
    ("smiling man, red hair", "a smiling man with red hair, brown eyes, red lips and fair skin"),
    ("woman, black hair", "a woman with black hair, brown eyes, red lips and fair skin"),
    ("woman, golden hair", "a woman with golden hair, light eyes, pink lips and very fair skin"),
    (
        "smiling woman, brown hair",
        "a smiling woman with brown hair, brown eyes, red lips and tanned skin",
    ),
)
"""(column label, sentence) of the description columns: two genders, four hair colours."""

PERSONS = ("photo1_0724", "photo1_0771", "photo1_0731", "photo2_0092", "photo3_0412", "photo1_1325")
"""Demo gallery identities of the identity-only and reference rows (the first three
have an artist's sketch among the demo probes)."""

IDENTITY_SEEDS = 2
STYLES = 3
LABEL_WIDTH = 220
TITLE_HEIGHT = 48
HEADER_HEIGHT = 66
GAP = 4
"""White pixels under every face row."""


@dataclass
class Section:
    """A titled block: column labels, then rows of (label, cells); a cell is an image or None."""

    title: str
    columns: list[str]
    rows: list[tuple[str, list[np.ndarray | None]]] = field(default_factory=list)


def expected_rows(probes: int, rounds: int) -> int:
    """Face rows the grid has for this many demo sketches and loop rounds."""
    return probes + (1 + IDENTITY_SEEDS) + (1 + STYLES + 1) + (1 + rounds)


# -- drawing -------------------------------------------------------------------------------


def _cell(image: np.ndarray | None, size: int, scale: int) -> np.ndarray:
    """A face at ``size``, upscaled ``scale``× by nearest neighbour (grey → RGB)."""
    from facefit.imaging.faces import resize_aligned

    side = size * scale
    if image is None:
        return text_box("(none)", side, side)
    image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    if image.shape[:2] != (size, size):
        image = resize_aligned(np.ascontiguousarray(image), size)
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def render(title: str, sections: Sequence[Section], size: int, scale: int) -> np.ndarray:
    """The grid as one uint8 RGB array (see the module doc for its layout)."""
    side = size * scale
    columns = max(len(s.columns) for s in sections)
    width = LABEL_WIDTH + columns * side
    blocks = [text_box(title, width, TITLE_HEIGHT, bold=True)]
    for section in sections:
        head = [text_box(section.title, LABEL_WIDTH, HEADER_HEIGHT, bold=True)]
        head += [text_box(c, side, HEADER_HEIGHT) for c in section.columns]
        blocks.append(_pad(np.concatenate(head, axis=1), width))
        for label, cells in section.rows:
            row = [text_box(label, LABEL_WIDTH, side)] + [_cell(c, size, scale) for c in cells]
            row = _pad(np.concatenate(row, axis=1), width)
            blocks.append(np.pad(row, ((0, GAP), (0, 0), (0, 0)), constant_values=255))
    return np.concatenate(blocks, axis=0)


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _pad(block: np.ndarray, width: int) -> np.ndarray:
    return np.pad(block, ((0, 0), (0, width - block.shape[1]), (0, 0)), constant_values=255)


# -- generating ----------------------------------------------------------------------------


class Looker:
    """Samples through one pipeline's components, as the loop does (see the module doc)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.components = pipeline.components
        self.size = int(self.components.model.image_size)

    def sample(self, conditions: list[Any], n: int, seed: int, domain: str = "photo") -> np.ndarray:
        from facefit.generator.conditions import domain_condition

        s = self.pipeline.settings
        return self.components.sampler.sample(
            self.components.backend,
            [*conditions, domain_condition(domain)],
            num_images=n,
            steps=s.steps,
            guidance=s.guidance,
            seed=seed,
        )

    def evidence(self, evidence: Any) -> list[Any]:
        """Every modality's condition for ``evidence`` (null where it has none), framed as in the loop."""
        prepared = self.pipeline.prepare(evidence)
        return [c(prepared.evidence) for c in self.components.conditioners.values()]

    def identity(self, crops: np.ndarray) -> np.ndarray:
        """Identity embeddings of aligned crops, by the generator's identity encoder."""
        from facefit.imaging.faces import resize_aligned

        encoder = self.components.identity_encoder
        return encoder.embed(np.stack([resize_aligned(c, encoder.input_size) for c in crops]))

    def reference(self, vector: np.ndarray, face: np.ndarray | None) -> Any:
        from facefit.generator.conditions import reference_condition
        from facefit.imaging.faces import resize_aligned

        dim = int(self.components.model.config.identity_dim)
        face = None if face is None else resize_aligned(face, self.size)
        return reference_condition(vector, face, self.size, dim)


def _demo() -> tuple[list[Any], dict[str, Path]]:
    from facefit.pipeline.demo import DEMO_DATA, demo_probes

    listing = json.loads((DEMO_DATA / "gallery.json").read_text(encoding="utf-8"))["identities"]
    return demo_probes(), {name: DEMO_DATA / path for name, path in listing.items()}


def description_section(looker: Looker, probes: list[Any], seed: int) -> Section:
    from facefit.imaging.images import load_image
    from facefit.types import Evidence

    section = Section(
        "Same sketch, different descriptions",
        ["artist's sketch (FS2K)", "sketch only", *(label for label, _ in DESCRIPTIONS)],
    )
    for probe in probes:
        sketch = load_image(probe.sketch)
        texts = [None, *(sentence for _, sentence in DESCRIPTIONS)]
        faces = [
            looker.sample(looker.evidence(Evidence(sketch=sketch, text=t)), 1, seed)[0]
            for t in texts
        ]
        section.rows.append((f"sketch of {probe.id}, seed {seed}", [sketch, *faces]))
    return section


def identity_section(looker: Looker, photos: dict[str, np.ndarray], seed: int) -> Section:
    encoder = looker.components.model.config.face_encoder
    section = Section(f"Identity only ({encoder} embedding)", list(photos))
    vectors = looker.identity(np.stack(list(photos.values())))
    made = [looker.sample([looker.reference(v, None)], IDENTITY_SEEDS, seed) for v in vectors]
    section.rows.append(("gallery photo (its embedding is the only input)", list(photos.values())))
    for k in range(IDENTITY_SEEDS):
        section.rows.append((f"from the embedding, seed {seed + k}", [m[k] for m in made]))
    return section


def sketch_section(
    looker: Looker, photos: dict[str, np.ndarray], sketches: dict[str, np.ndarray], seed: int
) -> Section:
    from facefit.generator.conditions import sketch_domain

    takes_image = bool(getattr(looker.components.model.config, "reference_image", False))
    how = "embedding + image" if takes_image else "embedding only; no image input"
    section = Section(f"Reference photo > sketch ({how})", list(photos))
    vectors = looker.identity(np.stack(list(photos.values())))
    section.rows.append(("reference photo", list(photos.values())))
    for style in range(STYLES):
        made = [
            looker.sample([looker.reference(v, face)], 1, seed, sketch_domain(style))[0]
            for v, face in zip(vectors, photos.values())
        ]
        section.rows.append((f"FS2K style {style}, seed {seed}", made))
    section.rows.append(("the artist's sketch (FS2K), where the demo has it", [
        sketches.get(name) for name in photos
    ]))  # fmt: skip
    return section


def _reference_face(trace: Any, traces: Sequence[Any], gallery: dict[str, np.ndarray]) -> Any:
    """The face image a round was steered by, read from its ``reference`` note."""
    source = trace.reference or ""
    found = re.search(r"face image of gallery (\S+?)(?:,|\s|$)", source)
    if found and found.group(1) in gallery:
        return gallery[found.group(1)]
    found = re.match(r"candidate (\d+)/(\d+)", source)
    if found:
        r, i = int(found.group(1)), int(found.group(2))
        if r < len(traces) and i < len(traces[r].candidates):
            return traces[r].candidates[i].image
    return None


def loop_section(pipeline: Any, probe: Any, gallery: dict[str, np.ndarray], rounds: int) -> Section:
    from facefit.imaging.images import load_image
    from facefit.types import Evidence

    k = pipeline.settings.candidates
    sketch = load_image(probe.sketch)
    result = pipeline.run(Evidence(sketch=sketch, text=probe.text), rounds=rounds)
    section = Section(
        f"The loop's rounds ({len(gallery)}-face demo gallery)",
        ["reference in", *(f"candidate {i}" for i in range(k)), "top identity after"],
    )
    section.rows.append((
        f'evidence for {probe.id}: sketch + "{probe.text}"; its true face (the loop never sees it)',
        [sketch, gallery.get(probe.id)],
    ))  # fmt: skip
    traces = result.rounds
    for trace in traces:
        top = trace.fused[0].identity if trace.fused else None
        mark = "" if top is None else (" (true)" if top == probe.id else "")
        cells = [_reference_face(trace, traces, gallery), *(c.image for c in trace.candidates)]
        cells += [None] * (1 + k - len(cells)) + [gallery.get(top) if top else None]
        section.rows.append((f"round {trace.round}: top {top}{mark}", cells))
    return section


# -- the whole grid ------------------------------------------------------------------------


def look_grid(
    out: str | Path,
    *,
    config: Any,
    registry: Any = None,
    force: bool = False,
    scale: int = 3,
    name: str | None = None,
    persons: Sequence[str] = PERSONS,
    probes: int | None = None,
) -> dict[str, Any]:
    """Draw the grid for the pipeline ``config`` (its ``model`` is the generator) into ``out``.

    ``config``'s ``rounds`` loop rounds are all run. ``probes``: use only the first N
    demo sketches for the description rows. Returns a summary (rows, size, path).
    Refuses an existing ``out`` unless ``force``.
    """
    from PIL import Image

    from facefit.files import atomic_write_bytes
    from facefit.imaging.images import load_image
    from facefit.pipeline import Pipeline
    from facefit.pipeline.demo import demo_gallery
    from facefit.registry import Registry

    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    registry = registry or Registry.load()
    demo_list, gallery_paths = _demo()
    demo_list = demo_list[:probes] if probes else demo_list
    unknown = [p for p in persons if p not in gallery_paths]
    if unknown:
        raise ValueError(f"not in the demo gallery: {', '.join(unknown)}")
    config = config.replace_settings(stop_when_stable=0)
    encoder = registry.create_face_encoder(config.components["face_encoder"].plugin)
    pipeline = Pipeline(config, registry=registry, gallery=demo_gallery(encoder, registry))
    looker = Looker(pipeline)
    settings = pipeline.settings
    gallery = {n: load_image(p) for n, p in gallery_paths.items()}
    photos = {n: gallery[n] for n in persons}
    sketches = {p.id: load_image(p.sketch) for p in demo_list}
    sections = [
        description_section(looker, demo_list, settings.seed),
        identity_section(looker, photos, settings.seed),
        sketch_section(looker, photos, sketches, settings.seed),
        loop_section(pipeline, demo_list[0], gallery, settings.rounds),
    ]
    components = pipeline.components
    shown = name or _relative(components.model_dir)
    title = (
        f"generator: {shown}; {settings.steps} {config.components['sampler'].plugin}"
        f" steps, guidance {settings.guidance:g}, {type(components.backend).__name__} backend;"
        f" {looker.size}px faces shown x{scale} (nearest). Only generated faces and the"
        " credited FS2K demo crops (sdk/facefit/demo_data/SOURCES.md)."
    )
    grid = render(title, sections, looker.size, scale)
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG", optimize=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buffer.getvalue())
    rows = [label for s in sections for label, _ in s.rows]
    return {"path": str(out), "rows": rows, "shape": grid.shape, "sections": len(sections)}


def _parser() -> argparse.ArgumentParser:
    from facefit.generator.loading import DEFAULT_MODEL_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL_DIR), help="generator model folder")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.add_argument("--name", help="the model's name in the title (default: its folder)")
    parser.add_argument("--scale", type=int, default=3, help="nearest-neighbour upscale")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", default="ddpm")
    parser.add_argument("--backend", default="auto", help="denoiser backend (auto: ONNX on CPU)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        sys.exit(f"{out} exists; pass --force to overwrite it")
    from facefit.config import ComponentSpec, PipelineConfig

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = PipelineConfig(
        components={
            "sampler": ComponentSpec(args.sampler),
            "denoiser_backend": ComponentSpec(args.backend),
        },
        model=args.model,
        rounds=args.rounds,
        candidates=args.candidates,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
    )
    from facefit.errors import FacefitError

    try:
        summary = look_grid(out, config=config, force=args.force, scale=args.scale, name=args.name)
    except (FacefitError, ValueError) as exc:  # bad --model, --scale or plugin names: no traceback
        sys.exit(f"generator_look_grid: {exc}")
    print(f"{summary['path']}: {len(summary['rows'])} rows, {summary['shape'][1]}x"
          f"{summary['shape'][0]} px")  # fmt: skip


if __name__ == "__main__":
    main()
