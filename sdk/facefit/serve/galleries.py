"""The galleries a server searches, each with its loaded pipeline.

A pipeline (generator, encoders, sampler) is loaded once per configured gallery
at start-up and shared by every run against that gallery; runs do not load
models. ``demo`` is the bundled 24-face FS2K gallery (see
:mod:`facefit.pipeline.demo`); any other entry is the folder of a gallery saved
with ``facefit gallery build``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from facefit.errors import InputError
from facefit.serve.settings import DEMO_GALLERY, ServeSettings

__all__ = ["Galleries"]

log = logging.getLogger(__name__)


def _config(settings: ServeSettings) -> Any:
    from facefit.pipeline import PipelineConfig

    base = (
        PipelineConfig.from_toml(settings.config_file)
        if settings.config_file is not None
        else PipelineConfig()
    )
    return base.replace_settings(
        rounds=settings.rounds,
        candidates=settings.candidates,
        steps=settings.steps,
        seed=settings.seed,
    )


class Galleries:
    """Gallery name → :class:`~facefit.pipeline.Pipeline`, loaded on first use."""

    def __init__(self, settings: ServeSettings, registry: Any = None) -> None:
        self.settings = settings
        self.sources = dict(settings.galleries)
        self._registry = registry
        self._pipelines: dict[str, Any] = {}
        self._lock = threading.Lock()
        for name, source in self.sources.items():
            if source != DEMO_GALLERY and not Path(source).is_dir():
                raise InputError(
                    f"gallery {name!r}: {source} is not a folder; build one with "
                    "`facefit gallery build` or use the bundled demo gallery"
                )

    @property
    def names(self) -> list[str]:
        return list(self.sources)

    def registry(self) -> Any:
        if self._registry is None:
            from facefit.registry import Registry

            self._registry = Registry.load()
        return self._registry

    def pipeline(self, name: str) -> Any:
        """The shared pipeline of gallery ``name`` (loads it the first time)."""
        if name not in self.sources:
            raise InputError(f"gallery {name!r}: not served here; known: {', '.join(self.sources)}")
        with self._lock:
            if name not in self._pipelines:
                self._pipelines[name] = self._load(name)
            return self._pipelines[name]

    def _load(self, name: str) -> Any:
        from facefit.pipeline import Pipeline

        config = _config(self.settings)
        source = self.sources[name]
        registry = self.registry()
        if source == DEMO_GALLERY:
            from facefit.pipeline.demo import demo_gallery, require_default_model

            if config.settings.model == "default":
                require_default_model()
            encoder = registry.create_face_encoder(config.components["face_encoder"].plugin)
            gallery: Any = demo_gallery(encoder, registry)
        else:
            gallery = source
        log.info("loading the pipeline for gallery %r (%s)", name, source)
        return Pipeline.from_config(config, gallery=gallery, registry=registry)

    def load_all(self) -> None:
        """Load every gallery's pipeline (at start-up, before the first run)."""
        for name in self.sources:
            pipeline = self.pipeline(name)
            warm = getattr(pipeline, "warm_up", None)
            if self.settings.warm_up and callable(warm):
                warm()
