"""Everything a pipeline needs, created once from a config and a registry.

Plugins are looked up and created here, at construction; the loop then calls the
objects directly and never goes through the registry or a hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facefit.config import PipelineConfig, validate
from facefit.devices import auto_backend, resolve_device
from facefit.errors import ConfigError
from facefit.types import MODALITIES

__all__ = ["Components", "backend_plugin", "build_components"]


@dataclass
class Components:
    """The created parts of a pipeline (see :class:`facefit.pipeline.Pipeline`)."""

    model: Any
    model_dir: Path
    device: str
    sampler: Any
    backend: Any
    conditioners: dict[str, Any]
    detector: Any
    face_encoder: Any
    """Embeds candidates for retrieval: the gallery's encoder."""
    identity_encoder: Any
    """Embeds candidates for the reference condition: the generator's identity encoder."""
    sketch_extractor: Any
    gallery: Any


def backend_plugin(name: str, registry: Any, device: str) -> str:
    """The denoiser backend to use for ``name`` on ``device``: itself, or for ``"auto"``
    ONNX Runtime on the CPU where it is installed (the graph is exported once into the
    engine cache; how it compares with eager: benchmarks/results/runtime_cpu.md),
    else eager. The rule is :func:`facefit.devices.auto_backend`, shared with
    ``facefit augment``."""
    return auto_backend(name, registry, device)


def _open_gallery(gallery: Any, encoder: Any, registry: Any) -> Any:
    from facefit.gallery import GalleryIndex

    if gallery is None:
        return None
    if isinstance(gallery, (str, Path)):
        return GalleryIndex.load(gallery, encoder=encoder, registry=registry)
    gallery.check_encoder(encoder)
    return gallery


def build_components(config: PipelineConfig, registry: Any, gallery: Any = None) -> Components:
    """Create every part named by ``config`` (plugin names are checked first)."""
    from facefit.generator.loading import load_generator, resolve_model_dir
    from facefit.imaging.faces import FaceEmbedder

    validate(config, registry)
    settings = config.settings
    device = resolve_device(settings.device)
    model_dir = resolve_model_dir(settings.model)
    model = load_generator(model_dir, device=device)

    embedder = FaceEmbedder.from_config(config, registry)
    face_encoder = embedder.encoder
    gallery = _open_gallery(gallery, face_encoder, registry)

    conditioners = _conditioners(config, registry, model, face_encoder)
    identity_encoder = conditioners["reference"].encoder
    if identity_encoder is None or int(identity_encoder.dim) != int(model.config.identity_dim):
        raise ConfigError(
            f"{config.source}: [conditioners.reference] must embed faces with the generator's "
            f"identity encoder ({model.config.face_encoder!r}, {model.config.identity_dim}-d)"
        )
    backend_spec = config.components["denoiser_backend"]
    backend = registry.create_hosted(
        "denoiser_backend",
        backend_plugin(backend_spec.plugin, registry, device),
        {"model": model.denoiser},
        **backend_spec.options,
    )
    sampler_spec = config.components["sampler"]
    sampler = registry.create_hosted(
        "sampler", sampler_spec.plugin, {"generator": model}, **sampler_spec.options
    )
    extractor_spec = config.components["sketch_extractor"]
    sketch_extractor = registry.create(
        "sketch_extractor", extractor_spec.plugin, **dict(extractor_spec.options)
    )
    return Components(
        model=model,
        model_dir=model_dir,
        device=device,
        sampler=sampler,
        backend=backend,
        conditioners=conditioners,
        detector=embedder.detector,
        face_encoder=face_encoder,
        identity_encoder=identity_encoder,
        sketch_extractor=sketch_extractor,
        gallery=gallery,
    )


def _conditioners(config: PipelineConfig, registry: Any, model: Any, face_encoder: Any) -> dict:
    """One conditioner per modality, each given the host options it declares.

    The reference conditioner embeds with the gallery's encoder when the generator
    was trained on that encoder (one model in memory), else with the generator's.
    """
    model_config = model.config
    conditioners = {}
    for modality in MODALITIES:
        spec = config.conditioners[modality]
        host: dict[str, Any] = {"image_size": model.image_size, "registry": registry}
        if modality == "reference":
            same = model_config.face_encoder == config.components["face_encoder"].plugin
            host["encoder"] = face_encoder if same else model_config.face_encoder
            host["detector"] = config.components["face_detector"].plugin
        elif modality == "text":
            host["encoder"] = model_config.text_encoder
        conditioners[modality] = registry.create_hosted(
            "conditioner", spec.plugin, host, **spec.options
        )
    return conditioners
