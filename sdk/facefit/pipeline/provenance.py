"""Provenance: everything needed to reproduce a result on the same machine.

``provenance.json`` records the sha256 of every input file, of the generator's
files and of the gallery's manifest; the whole resolved config (settings and the
plugin chosen for every part, with options); the plugins' packages and versions;
the seeds; timings; and the facefit, torch and Python versions. A config rebuilt
from it (:func:`config_from_provenance`) with the same inputs reproduces
``result.json`` byte for byte.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facefit.config import PipelineConfig, parse_config
from facefit.files import sha256_file

__all__ = ["config_from_provenance", "config_to_dict", "make_provenance"]

FORMAT = "facefit-provenance/1"


def config_to_dict(config: PipelineConfig) -> dict[str, Any]:
    """The config as a TOML-shaped dict that :func:`facefit.config.parse_config` reads back."""
    from dataclasses import asdict

    data: dict[str, Any] = {"pipeline": asdict(config.settings)}
    for kind, spec in config.components.items():
        data[kind] = {"plugin": spec.plugin, **dict(spec.options)}
    data["conditioners"] = {
        m: {"plugin": spec.plugin, **dict(spec.options)} for m, spec in config.conditioners.items()
    }
    if config.weights:
        data["weights"] = dict(config.weights)
    return data


def config_from_provenance(
    provenance: dict[str, Any], source: str = "<provenance>"
) -> PipelineConfig:
    """The exact config a result was made with."""
    return parse_config(provenance["config"], source)


def _plugins(pipeline: Any) -> dict[str, Any]:
    config, registry = pipeline.config, pipeline.registry
    plugins = [
        (kind, spec.plugin) for kind, spec in config.components.items() if spec.plugin != "auto"
    ]
    plugins += [("conditioner", spec.plugin) for spec in config.conditioners.values()]
    backend = getattr(getattr(pipeline, "components", None), "backend", None)
    if config.components["denoiser_backend"].plugin == "auto" and backend is not None:
        plugins.append(("denoiser_backend", backend.name))  # what "auto" chose here
    out = {}
    for kind, name in plugins:
        entry = registry.entry(kind, name)
        out[f"{kind}:{name}"] = {
            "plugin": entry.plugin.name,
            "package": entry.plugin.package,
            "version": entry.plugin.version,
        }
    return out


def make_provenance(
    pipeline: Any,
    result: Any,
    *,
    inputs: dict[str, str],
    text: str | Sequence[str] | None,
    seconds: dict[str, float],
    command: list[str] | None = None,
) -> dict[str, Any]:
    """The provenance record of one run (``inputs``: modality → file path; ``text``: the
    description, or every description in order).

    ``text`` records the first description (as before several were taken) and
    ``texts`` every one, in order (``[]`` without text)."""
    texts = [text] if isinstance(text, str) else list(text or ())
    import torch

    from facefit.version import __version__

    components = pipeline.components
    model_files = {
        p.name: sha256_file(p) for p in sorted(components.model_dir.iterdir()) if p.is_file()
    }
    gallery = None
    if components.gallery is not None:
        path = components.gallery.path
        manifest = path / "manifest.json" if path is not None else None
        gallery = {
            "path": str(path) if path else None,
            "manifest_sha256": sha256_file(manifest) if manifest and manifest.is_file() else None,
            "encoder": str(components.gallery.encoder),
            "faces": len(components.gallery),
            "identities": components.gallery.num_identities,
        }
    return {
        "format": FORMAT,
        "facefit": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": components.device,
        "command": command,
        "inputs": {
            m: {"path": str(Path(p).resolve()), "sha256": sha256_file(p)} for m, p in inputs.items()
        },
        "text": texts[0] if texts else None,
        "texts": texts,
        "model": {"path": str(components.model_dir.resolve()), "files": model_files},
        "gallery": gallery,
        "config": config_to_dict(pipeline.config),
        "plugins": _plugins(pipeline),
        "seeds": {"seed": pipeline.settings.seed, "rounds": result.provenance.get("round_seeds")},
        "stopped": result.provenance.get("stopped"),
        "timings": {**seconds, "rounds": [round(t.seconds, 4) for t in result.rounds]},
    }
