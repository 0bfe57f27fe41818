"""Every ```python snippet in README.md and docs/ runs, on the demo data, with tiny settings.

A document's snippets run in order in one namespace (as a reader would type them),
in a scratch folder. A guide's snippet may use names it only describes (``photos``,
``probe_vector``) or files it only names (``probe.jpg``): :data:`SETUP` defines those
from the bundled demo data before the document's first snippet. Speed: sampler
runs are capped at 2 steps and augmentation at 2 steps (:func:`tiny`), so the
snippets show the real calls without the minutes a full run takes on a CPU.
A snippet that needs what a test machine cannot have (a Ray cluster, a Milvus
server) is listed in :data:`SKIP` with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.S | re.M)

SKIP = {
    ("augmentation.md", "augment_ray("): "needs a Ray cluster with a GPU (address='auto')",
    ("gallery.md", "milvus://"): "connects to a Milvus server (milvus://milvus.internal:19530)",
    ("web.md", "http://127.0.0.1:8000"): (
        "talks to a running `facefit serve`; tests/test_serve_api.py drives drive_case() "
        "against the app"
    ),
}
"""(document, text in the snippet) → why it cannot run on a test machine."""

_DEMO = """
import hashlib, shutil
from pathlib import Path
from facefit.imaging.images import load_image
from facefit.pipeline.demo import DEMO_DATA
_gallery_files = sorted((DEMO_DATA / "gallery").glob("*.jpg"))
paths = [str(p) for p in _gallery_files]
names = [p.stem for p in _gallery_files]
photos = [load_image(p) for p in paths]
digests = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
shutil.copy(paths[0], "probe.jpg")
shutil.copy(DEMO_DATA / "probes" / "sketch_photo1_0724.png", "sketch.png")
"""

SETUP = {
    "faces.md": _DEMO
    + """
from facefit.imaging.faces import FaceEmbedder as _Embedder
image, (a, b) = photos[0], photos[:2]
_embedder = _Embedder.from_registry(__import__("facefit").Registry.load())
crops = __import__("numpy").stack([_embedder.align(p) for p in photos[:2]])
""",
    "gallery.md": _DEMO
    + """
from facefit.imaging.faces import FaceEmbedder as _Embedder
_embedder = _Embedder.from_registry(__import__("facefit").Registry.load())
probe_vector = _embedder.embed_images([load_image("probe.jpg")])[0]
vectors = _embedder.embed_images(photos[:2])
""",
    "generator.md": _DEMO
    + """
from facefit.imaging.faces import FaceEmbedder as _Embedder
from facefit.imaging.sketch import to_grey as _to_grey
from facefit.imaging.degrade import downscale as _downscale
_embedder = _Embedder.from_registry(__import__("facefit").Registry.load(), sketch_fallback=True)
aligned_sketch = _to_grey(_embedder.align(load_image("sketch.png"), size=64), "sketch.png")
frame_8x8 = _downscale(_embedder.align(photos[0], size=64), 8)
""",
    "augmentation.md": """
import shutil
from pathlib import Path
from facefit.pipeline.demo import DEMO_DATA
for _p in sorted((DEMO_DATA / "gallery").glob("*.jpg"))[:2]:
    Path("mugshots", _p.stem).mkdir(parents=True)
    shutil.copy(_p, Path("mugshots", _p.stem, "1.jpg"))
""",
    "matcher.md": """
from facefit.matcher.files import save_matcher
from facefit.matcher.model import load_base
save_matcher("models/sketch-matcher", load_base(), {"input_size": 112})
""",
    "writing-plugins.md": """
def make_variant(**options):
    return MyEncoder(checkpoint="fast.safetensors", **options)
""",
}
"""Per document: what its snippets take as given, made from the demo data."""


def snippets(document: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of each python fence in a markdown file."""
    text = document.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cap sampler steps at 2 and augmentation steps at 2 while snippets run."""
    from dataclasses import dataclass

    import facefit.augment
    from facefit_plugins.samplers import DiffusersSampler

    sample = DiffusersSampler.sample

    def few_steps(self, *args, steps, **kwargs):
        return sample(self, *args, steps=min(steps, 2), **kwargs)

    monkeypatch.setattr(DiffusersSampler, "sample", few_steps)

    @dataclass(frozen=True)
    class TinyAugmentSettings(facefit.augment.AugmentSettings):
        steps: int = 2

    monkeypatch.setattr(facefit.augment, "AugmentSettings", TinyAugmentSettings)


def _with_snippets() -> list[Path]:
    return [d for d in DOCUMENTS if snippets(d)]


def test_the_guides_have_snippets_to_run():
    names = {d.name for d in _with_snippets()}
    assert {"pipeline.md", "gallery.md", "writing-plugins.md"} <= names


@pytest.mark.parametrize(
    "document", _with_snippets(), ids=lambda d: str(d.relative_to(REPO)).replace("/", "-")
)
def test_every_snippet_runs(document, tmp_path, monkeypatch):
    from facefit import weights
    from facefit.errors import WeightsNotFoundError

    try:
        weights.resolve("yunet"), weights.resolve("sface")
    except WeightsNotFoundError as exc:
        pytest.skip(f"model files not installed ({exc}); run `facefit models install`")
    monkeypatch.chdir(tmp_path)
    tiny(monkeypatch)
    namespace: dict = {"__name__": "__snippet__"}
    exec(SETUP.get(document.name, ""), namespace)
    skipped = []
    for line, code in snippets(document):
        reason = next(
            (why for (doc, text), why in SKIP.items() if doc == document.name and text in code),
            None,
        )
        if reason is not None:
            skipped.append(f"line {line}: {reason}")
            continue
        where = f"{document.relative_to(REPO)}:{line}"
        try:
            exec(compile(code, where, "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"the snippet at {where} fails: {type(exc).__name__}: {exc}")
    assert len(skipped) < len(snippets(document)), f"every snippet skipped: {skipped}"
