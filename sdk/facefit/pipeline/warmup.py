"""Loading a pipeline's models ahead of its first run, without printing.

Plugins load their weights on first use (listing plugins stays fast), so the
first :meth:`~facefit.pipeline.Pipeline.run` pays for loading the text encoder,
the face detector and encoders, and for torch's first calls. :func:`warm_up`
makes each part do one small piece of work instead, on made-up inputs, so that
an application can pay that once at start-up. transformers' "Loading weights"
bar is silenced while facefit loads models.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["quiet_loading", "warm_up"]

log = logging.getLogger(__name__)

_quiet = threading.Lock()
_quiet_depth = 0
_bar_was_on = False


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' progress bars inside the block (nested and threaded use is safe).

    The switch is transformers' own and process-wide: it is restored when the
    last block using it ends.
    """
    global _quiet_depth, _bar_was_on
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # no transformers, no bar
        yield
        return
    with _quiet:
        if _quiet_depth == 0:
            _bar_was_on = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _bar_was_on:
                hf_logging.enable_progress_bar()


def _sample_evidence(size: int) -> Any:
    """Made-up evidence of every modality, shaped as the conditioners expect it."""
    from facefit.types import Evidence

    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    sketch = np.full((size, size), 255, np.uint8)
    sketch[size // 3, size // 4 : -size // 4] = 0
    return Evidence(sketch=sketch, lq=face[:8, :8], text="a face", reference=face)


def warm_up(components: Any) -> float:
    """Load every part of a pipeline by using it once; return the seconds it took."""
    from facefit.generator.conditions import domain_condition

    start = time.perf_counter()
    size = components.model.image_size
    evidence = _sample_evidence(size)
    with quiet_loading():
        components.detector.detect(np.zeros((size * 2, size * 2, 3), np.uint8))
        conditions = [c(evidence) for c in components.conditioners.values()]
        crops = evidence.reference[None]
        for encoder in {
            id(e): e for e in (components.face_encoder, components.identity_encoder)
        }.values():
            encoder.embed(_resized(crops, encoder.input_size))
        components.sketch_extractor.extract(evidence.reference)
        components.sampler.sample(
            components.backend,
            [*conditions, domain_condition("photo")],
            num_images=1,
            steps=1,
            guidance=2.0,  # both halves, as a guided run
            seed=0,
        )
        if components.gallery is not None and len(components.gallery):
            components.gallery.search(
                np.ones(components.gallery.dim, np.float32) / np.sqrt(components.gallery.dim), k=1
            )
    seconds = time.perf_counter() - start
    log.info("pipeline warmed up in %.2f s", seconds)
    return seconds


def _resized(crops: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(np.ascontiguousarray(c), (size, size)) for c in crops])
