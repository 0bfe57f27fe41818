"""A trained matcher on disk: one directory, four files.

=====================  =============================================================
``config.json``        format, base encoder, what was trained, data, settings, metrics,
                       file checksums and the ONNX ↔ torch parity measured at export
``model.onnx``         the full network: SFace's graph with the fine-tuned weights
``model.safetensors``  every weight of that graph, by ONNX initializer name (torch form)
``README.md``          the model card
=====================  =============================================================

:func:`load_matcher_onnx` gives the ONNX model for ONNX Runtime, and
:func:`load_matcher_torch` a differentiable ``torch.nn.Module``
(:class:`facefit.weights.onnx_torch.OnnxGraphModule` of the graph with the safetensors weights).
:func:`resolve_matcher_dir` finds the directory the way :mod:`facefit.weights` finds
model files: explicit path → pipeline config ``[weights]`` → ``FACEFIT_SKETCH_MATCHER_PATH``
→ ``$FACEFIT_HOME/models/sketch-matcher``, which is built from the matcher the package
ships (:mod:`facefit.matcher.shipped`) on first use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError, WeightsNotFoundError
from facefit.files import atomic_write

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "MATCHER_NAME",
    "ONNX_FILE",
    "WEIGHTS_FILE",
    "export_onnx",
    "load_matcher_onnx",
    "load_matcher_torch",
    "read_config",
    "resolve_matcher_dir",
    "save_matcher",
]

FORMAT = "facefit-sketch-matcher"
FORMAT_VERSION = 1
MATCHER_NAME = "sketch-matcher"
ENV_VAR = "FACEFIT_SKETCH_MATCHER_PATH"
CONFIG_FILE = "config.json"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"


def resolve_matcher_dir(
    path: str | os.PathLike[str] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    name: str = MATCHER_NAME,
) -> Path:
    """The matcher directory: ``path`` → ``config[name]`` → ``$FACEFIT_SKETCH_MATCHER_PATH``
    → ``$FACEFIT_HOME/models/sketch-matcher``.

    A directory given in the first three that does not hold a matcher is an error, never
    silently replaced by the cache. The cache's copy is built from the shipped matcher
    (:func:`facefit.matcher.shipped.install_shipped`) when it is missing or was built from
    another package version's layers; a matcher a user trained into it is kept.
    """
    from facefit.weights import cache_dir

    table = getattr(config, "weights", config)
    if path is not None and str(path) != "":
        found, source = Path(path).expanduser(), "explicit path"
    elif table and table.get(name):
        found, source = Path(table[name]).expanduser(), f"[weights] {name}"
    elif os.environ.get(ENV_VAR):
        found, source = Path(os.environ[ENV_VAR]).expanduser(), ENV_VAR
    else:
        found, source = cache_dir() / name, "the model cache"
        if name == MATCHER_NAME:
            found = _cached_or_shipped(found)
        if not (found / CONFIG_FILE).is_file():
            raise WeightsNotFoundError(
                f"no trained sketch matcher: no path given, no {ENV_VAR}, and nothing in "
                f"{found}; train one with: facefit train-matcher --data DATA --out DIR, then "
                f"pass --matcher-path DIR (or set {ENV_VAR}=DIR)"
            )
    if not (found / CONFIG_FILE).is_file():
        raise WeightsNotFoundError(
            f"sketch matcher {found} (from {source}) has no {CONFIG_FILE}; give the directory "
            "facefit train-matcher wrote (--out)"
        )
    return found


def _cached_or_shipped(found: Path) -> Path:
    """The cache's matcher: one a user put there is kept; otherwise the shipped matcher is
    built there on first use (or rebuilt from a newer package's layers)."""
    from facefit.matcher.shipped import install_shipped

    config = found / CONFIG_FILE
    if config.is_file():
        try:
            own = "shipped" not in json.loads(config.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            own = False
        if own:
            return found
    try:
        install_shipped(found)
    except WeightsNotFoundError:
        if not config.is_file():
            raise
    return found


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The matcher's ``config.json``, checked to be a matcher of a known format version."""
    path = Path(directory) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsNotFoundError(f"{path}: not found; is this a trained matcher?") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise InputError(f"{path}: not a facefit sketch matcher (format {FORMAT!r} expected)")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(
            f"{path}: format version {config.get('format_version')} is newer than this facefit "
            f"reads ({FORMAT_VERSION}); upgrade facefit"
        )
    return config


def export_onnx(base: Any, weights: Mapping[str, np.ndarray]) -> Any:
    """``base`` with ``weights`` written into its initializers, checked by ``onnx.checker``."""
    import onnx

    from facefit.matcher.model import with_weights

    model = with_weights(base, weights)
    model.graph.name = f"{model.graph.name or 'sface'}-sketch-matcher"
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "facefit", FORMAT
    onnx.checker.check_model(model)
    return model


def load_matcher_onnx(directory: str | os.PathLike[str]) -> Any:
    """The matcher's ONNX model (``onnx.ModelProto``), batch dimension free."""
    import onnx

    path = Path(directory) / ONNX_FILE
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: not found; the matcher directory is incomplete")
    return onnx.load(str(path))


def load_weights(directory: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every weight of the matcher by ONNX initializer name, from ``model.safetensors``."""
    from safetensors.numpy import load_file

    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: not found; the matcher directory is incomplete")
    return load_file(str(path))


def load_matcher_torch(
    directory: str | os.PathLike[str], structure: Any = None, *, trainable: bool = False
) -> Any:
    """The matcher as a torch module: ``(N, 3, 112, 112)`` RGB in [0, 255] → ``(N, dim)``.

    The graph comes from ``structure`` (an ONNX model; default: the directory's
    ``model.onnx``, else the base SFace file) and every weight from ``model.safetensors``;
    a weight the graph lacks, or one it has that the file does not, is an error. Eval mode;
    parameters frozen unless ``trainable`` (gradients reach the input either way).
    """
    from onnx import numpy_helper

    from facefit.matcher.model import load_base, with_weights
    from facefit.weights.onnx_torch import OnnxGraphModule

    weights = load_weights(directory)
    if structure is None:
        onnx_path = Path(directory) / ONNX_FILE
        structure = load_matcher_onnx(directory) if onnx_path.is_file() else load_base()
    names = {t.name for t in structure.graph.initializer}
    missing = sorted(names - set(weights))
    if missing:
        raise InputError(
            f"{Path(directory) / WEIGHTS_FILE}: lacks {len(missing)} weight(s) of the graph, "
            f"e.g. {', '.join(missing[:3])}"
        )
    shapes = {t.name: tuple(numpy_helper.to_array(t).shape) for t in structure.graph.initializer}
    module = OnnxGraphModule(with_weights(structure, {n: weights[n] for n in shapes}))
    module.requires_grad_(trainable)
    return module.eval()


def save_matcher(
    directory: str | os.PathLike[str],
    model: Any,
    config: dict[str, Any],
    *,
    card: str | None = None,
    parity_faces: np.ndarray | None = None,
) -> Path:
    """Write ``model`` (a checked ONNX model, see :func:`export_onnx`) as a matcher.

    Writes ``model.onnx`` and ``model.safetensors``, reloads both (ONNX Runtime and the
    torch module), records their largest embedding difference on ``parity_faces``
    (default: eight random crops) in ``config["parity"]``, then writes ``config.json`` and
    the card. Each file goes to a temporary name first and is renamed into place.
    """
    from onnx import numpy_helper
    from safetensors.numpy import save_file

    from facefit.files import sha256_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path = directory / ONNX_FILE
    atomic_write(onnx_path, lambda p: p.write_bytes(model.SerializeToString()))
    weights = {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}
    atomic_write(
        directory / WEIGHTS_FILE,
        lambda p: save_file(weights, str(p), metadata={"format": FORMAT}),
    )
    if parity_faces is None:
        size = int(config.get("input_size", 112))
        rng = np.random.default_rng(0)
        parity_faces = rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    config = dict(config)
    config.update(format=FORMAT, format_version=FORMAT_VERSION)
    config["parity"] = parity(directory, parity_faces)
    config["files"] = {name: sha256_file(directory / name) for name in (ONNX_FILE, WEIGHTS_FILE)}
    text = json.dumps(config, indent=2, sort_keys=False, default=str) + "\n"
    atomic_write(directory / CONFIG_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    if card is not None:
        atomic_write(directory / CARD_FILE, lambda p: p.write_text(card, encoding="utf-8"))
    return directory


def parity(directory: str | os.PathLike[str], faces: np.ndarray) -> dict[str, float]:
    """ONNX Runtime against the torch module on ``faces``: largest |difference| and lowest cosine."""
    import onnxruntime as ort
    import torch

    model = load_matcher_onnx(directory)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    blob = np.ascontiguousarray(faces.transpose(0, 3, 1, 2), dtype=np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: blob})[0]
    module = load_matcher_torch(directory, model)
    with torch.no_grad():
        got = module(torch.from_numpy(blob)).numpy()
    cosine = (got * expected).sum(1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    return {
        "faces": len(faces),
        "max_abs_diff": float(np.abs(got - expected).max()),
        "min_cosine": float(cosine.min()),
    }
