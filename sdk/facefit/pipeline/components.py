"""Everything a pipeline needs, created once from a config and a registry.

Plugins are looked up and created here, at construction; the loop then calls the
objects directly and never goes through the registry or a hook.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facefit.config import PipelineConfig, validate
from facefit.errors import ConfigError, InputError
from facefit.types import MODALITIES

__all__ = ["Components", "accepts", "backend_plugin", "build_components", "resolve_device"]


def resolve_device(name: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` → a device torch can use here, or an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(
                f"device {name!r} requested but no CUDA GPU is usable here "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu"
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise InputError(
                f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return name
    raise InputError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto")


def accepts(factory: Any, option: str) -> bool:
    """Whether ``factory`` takes the keyword ``option`` (or any keyword)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == option or p.kind is p.VAR_KEYWORD for p in parameters)


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
    """The denoiser backend to use for ``name``: itself, or for ``"auto"`` ONNX Runtime
    on the CPU where it is installed (the graph is exported once into the engine cache;
    about 4x faster than eager there, benchmarks/results/runtime_cpu.md), else eager."""
    import importlib.util

    if name != "auto":
        return name
    if (
        device == "cpu"
        and "onnxruntime" in registry.list("denoiser_backend")
        and importlib.util.find_spec("onnxruntime") is not None
    ):
        return "onnxruntime"
    return "eager"


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
    from facefit.faces import FaceEmbedder
    from facefit.generator.loading import load_generator, resolve_model_dir

    validate(config, registry)
    settings = config.settings
    device = resolve_device(settings.device)
    model_dir = resolve_model_dir(settings.model)
    model = load_generator(model_dir, device=device)

    embedder = FaceEmbedder.from_config(config, registry)
    face_encoder = embedder.encoder
    gallery = _open_gallery(gallery, face_encoder, registry)

    def create(kind: str, name: str, options: dict[str, Any], **defaults: Any) -> Any:
        factory = registry.entry(kind, name).factory
        extra = {k: v for k, v in defaults.items() if k not in options and accepts(factory, k)}
        return registry.create(kind, name, **options, **extra)

    model_config = model.config
    conditioners = {}
    for modality in MODALITIES:
        spec = config.conditioners[modality]
        options = dict(spec.options)
        defaults: dict[str, Any] = {"image_size": model.image_size, "registry": registry}
        if modality == "reference":
            same = model_config.face_encoder == config.components["face_encoder"].plugin
            defaults["encoder"] = face_encoder if same else model_config.face_encoder
            defaults["detector"] = config.components["face_detector"].plugin
        elif modality == "text":
            defaults["encoder"] = model_config.text_encoder
        conditioners[modality] = create("conditioner", spec.plugin, options, **defaults)

    identity_encoder = getattr(conditioners["reference"], "encoder", None)
    if identity_encoder is None or int(identity_encoder.dim) != int(model_config.identity_dim):
        raise ConfigError(
            f"{config.source}: [conditioners.reference] must embed faces with the generator's "
            f"identity encoder ({model_config.face_encoder!r}, {model_config.identity_dim}-d)"
        )
    backend_spec = config.components["denoiser_backend"]
    backend = create(
        "denoiser_backend",
        backend_plugin(backend_spec.plugin, registry, device),
        dict(backend_spec.options),
        model=model.denoiser,
    )
    sampler_spec = config.components["sampler"]
    sampler = create("sampler", sampler_spec.plugin, dict(sampler_spec.options), generator=model)
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
