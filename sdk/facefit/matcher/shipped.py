"""The sketch matcher that ships with facefit: fine-tuned layers only, applied to SFace at load.

A trained matcher directory (:mod:`facefit.matcher.files`) holds two full copies of the
network (ONNX and safetensors, ~39 MB each). The package carries only what training
changed, in ``facefit/matcher/default/``:

==========================  ==========================================================
``tail.safetensors``        the fine-tuned layers (SFace's ``conv_14``, ``bn1``, embedding),
                            float16, by ONNX initializer name
``config.json``             the trained matcher's config (data, recipe, validation
                            metrics, base SFace sha256) plus a ``shipped`` block: the
                            tail's sha256, dtype and layer names
``README.md``               the model card
==========================  ==========================================================

:func:`install_shipped` builds the full matcher once into the model cache
(``$FACEFIT_HOME/models/sketch-matcher``): it checks the tail's sha256 and the SFace
file's, writes the float16 weights (as float32) into SFace's graph and saves it with
:func:`~facefit.matcher.files.save_matcher` (ONNX + safetensors + ONNX/torch parity).
``facefit models install`` runs it, and so does the first use of the ``sketch-matcher``
encoder without a path (:func:`facefit.matcher.files.resolve_matcher_dir`). A cached
copy made from another package version's tail is rebuilt.

:func:`pack_shipped` makes the package files from a trained matcher directory.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError, WeightsNotFoundError
from facefit.files import atomic_write, atomic_write_text, replaced_dir

log = logging.getLogger(__name__)

__all__ = [
    "PACKAGE_DIR",
    "TAIL_FILE",
    "install_shipped",
    "is_current",
    "load_tail",
    "pack_shipped",
    "shipped_config",
]

PACKAGE_DIR = Path(__file__).parent / "default"
"""Where the package carries the shipped matcher."""
TAIL_FILE = "tail.safetensors"
TAIL_FORMAT = "facefit-sketch-matcher-tail"
_CONFIG = "config.json"
_CARD = "README.md"


def shipped_config(package: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The shipped matcher's config; :class:`WeightsNotFoundError` when the package has none.

    ``package``: the folder holding the shipped files (default :data:`PACKAGE_DIR`).
    """
    package = _package(package)
    path = package / _CONFIG
    if not path.is_file() or not (Path(package) / TAIL_FILE).is_file():
        raise WeightsNotFoundError(
            f"no shipped sketch matcher in {package} (needs {_CONFIG} and {TAIL_FILE}); "
            "train one with: facefit train-matcher --data DATA --out DIR, and pass "
            "--matcher-path DIR"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); reinstall facefit") from None
    if not isinstance(config, dict) or "shipped" not in config:
        raise InputError(f"{path}: not a shipped sketch matcher config (no 'shipped' block)")
    return config


def load_tail(package: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The shipped float16 layers by ONNX name, after checking the file's sha256 and names.

    A damaged file (another sha256 than the config records), or one whose layers are not
    the ones the config lists, is refused with :class:`InputError`.
    """
    from safetensors.numpy import load_file

    from facefit.files import sha256_file

    package = _package(package)
    config = shipped_config(package)
    path = package / TAIL_FILE
    info = config["shipped"]
    actual = sha256_file(path)
    if actual != info["tail_sha256"]:
        raise InputError(
            f"{path}: sha256 {actual[:16]}… does not match the {info['tail_sha256'][:16]}… its "
            f"{_CONFIG} records; the file is damaged or from another version: reinstall facefit"
        )
    tail = load_file(str(path))
    if sorted(tail) != sorted(info["layers"]):
        raise InputError(f"{path}: holds layers {sorted(tail)}, its config lists {info['layers']}")
    wrong = sorted(n for n, v in tail.items() if v.dtype != np.float16)
    if wrong:
        raise InputError(f"{path}: layers {', '.join(wrong)} are not float16")
    return tail


def pack_shipped(
    matcher_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    base_path: str | os.PathLike[str] | None = None,
    dev: dict[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Write the package files of the matcher trained in ``matcher_dir`` into ``out``.

    Only the layers training changed (``config["trained"]``) are kept, as float16; every
    other weight must equal SFace's (``base_path``, default as the ``sface`` plugin finds
    it, whose sha256 must be the one the matcher was trained from). ``dev``: the
    development-split figures for the config and the model card (its ``dev`` block, see
    :func:`facefit.matcher.card.model_card`). The card is written from the shipped config.
    """
    from onnx import numpy_helper
    from safetensors.numpy import save_file

    from facefit.files import sha256_file
    from facefit.matcher.card import model_card
    from facefit.matcher.files import load_weights, read_config
    from facefit.matcher.model import load_base
    from facefit.weights import resolve

    out = _package(out)
    if (out / TAIL_FILE).exists() and not force:
        raise InputError(f"{out}: a shipped matcher is already there; pass force=True to replace")
    config = read_config(matcher_dir)
    weights = load_weights(matcher_dir)
    base_file = resolve("sface", base_path)
    _check_base(base_file, config)
    base = {t.name: numpy_helper.to_array(t) for t in load_base(base_file).graph.initializer}
    trained = list(config["trained"])
    changed = sorted(n for n in trained if not np.array_equal(weights[n], base[n]))
    untrained = [n for n in weights if n not in trained and not np.array_equal(weights[n], base[n])]
    if untrained:
        raise InputError(
            f"{matcher_dir}: weights outside the trained layers differ from SFace "
            f"({', '.join(untrained[:3])}); it cannot ship as a tail on SFace"
        )
    if not changed:
        raise InputError(f"{matcher_dir}: no layer differs from SFace; nothing to ship")
    tail = {n: weights[n].astype(np.float16) for n in trained}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        out / TAIL_FILE, lambda tmp: save_file(tail, str(tmp), metadata={"format": TAIL_FORMAT})
    )
    shipped = {k: v for k, v in config.items() if k not in ("files", "parity", "onnx_sha256")}
    shipped["shipped"] = {
        "tail_sha256": sha256_file(out / TAIL_FILE),
        "dtype": "float16",
        "layers": trained,
        "from": {"onnx_sha256": config.get("files", {}).get("model.onnx")},
    }
    if dev is not None:
        shipped["dev"] = dev
    _write(out / _CONFIG, json.dumps(shipped, indent=2) + "\n")
    _write(out / _CARD, model_card(shipped))
    return out


def is_current(
    directory: str | os.PathLike[str], package: str | os.PathLike[str] | None = None
) -> bool:
    """True when ``directory`` holds a matcher built from this package's shipped tail."""
    from facefit.matcher.files import ONNX_FILE, WEIGHTS_FILE

    package = _package(package)
    path = Path(directory) / _CONFIG
    if not path.is_file() or not (Path(directory) / ONNX_FILE).is_file():
        return False
    if not (Path(directory) / WEIGHTS_FILE).is_file():
        return False
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        return cached["shipped"]["tail_sha256"] == shipped_config(package)["shipped"]["tail_sha256"]
    except (json.JSONDecodeError, KeyError, TypeError, InputError, WeightsNotFoundError):
        return False


def install_shipped(
    dest: str | os.PathLike[str] | None = None,
    *,
    package: str | os.PathLike[str] | None = None,
    base_path: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> tuple[Path, str]:
    """Build the shipped matcher into ``dest`` (default: the cache's ``sketch-matcher``).

    Returns ``(directory, action)``: ``"installed"``, ``"already installed"`` or
    ``"replaced"`` (a copy from another tail). The directory is built next to ``dest``
    and renamed into place, so an interrupted install leaves no half matcher.
    """
    from facefit.matcher.files import MATCHER_NAME, export_onnx, save_matcher
    from facefit.matcher.model import load_base
    from facefit.weights import cache_dir, resolve

    package = _package(package)
    dest = Path(dest) if dest is not None else cache_dir() / MATCHER_NAME
    if not force and is_current(dest, package):
        return dest, "already installed"
    config = shipped_config(package)
    tail = load_tail(package)
    base_file = resolve("sface", base_path)
    _check_base(base_file, config)
    model = export_onnx(load_base(base_file), {n: v.astype(np.float32) for n, v in tail.items()})
    card = (package / _CARD).read_text(encoding="utf-8")
    existed = dest.exists()
    with replaced_dir(dest) as building:
        rng = np.random.default_rng(0)
        faces = rng.integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
        save_matcher(building, model, config, card=card, parity_faces=faces)
    log.info("sketch matcher built from the shipped layers into %s", dest)
    return dest, "replaced" if existed else "installed"


def _package(folder: str | os.PathLike[str] | None) -> Path:
    # looked up at call time, so tests and vendors can point PACKAGE_DIR elsewhere
    return Path(folder) if folder is not None else PACKAGE_DIR


def _check_base(base_file: Path, config: dict[str, Any]) -> None:
    from facefit.files import sha256_file

    want = config.get("base", {}).get("sha256")
    actual = sha256_file(base_file)
    if want and actual != want:
        raise InputError(
            f"SFace file {base_file} has sha256 {actual[:16]}…, but the sketch matcher was "
            f"trained from {want[:16]}…; install the pinned SFace: facefit models install sface"
        )


def _write(path: Path, text: str) -> None:
    atomic_write_text(path, text)
