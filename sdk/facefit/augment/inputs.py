"""Which mugshots to augment, and whose face each one shows.

Three sources, read the way ``facefit gallery build`` reads them:

- a folder laid out ``DIR/<identity>/<image>`` (images deeper down belong to the
  first-level folder);
- a folder plus a CSV naming each image's identity (``image,identity`` columns,
  paths relative to the folder; :func:`facefit.gallery.build.from_csv`);
- a gallery directory made by ``facefit gallery build``: its metadata gives each
  face's source file and identity.

Every mugshot gets a *key*: its path relative to the input folder (for a gallery,
the source path as stored). Keys, not the order of a listing, name the output
files and derive the seeds, so the same mugshot gets the same sketches however the
rest of the input changes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facefit.errors import InputError

__all__ = ["Mugshot", "is_gallery", "read_mugshots"]


@dataclass(frozen=True)
class Mugshot:
    """One input photo: where it is, who it shows and how it is named in the output."""

    path: Path
    """Absolute path of the image file."""
    identity: str
    key: str
    """Stable name: the path relative to the input folder (POSIX), or the gallery source."""

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "identity": self.identity, "path": str(self.path)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Mugshot:
        return cls(Path(data["path"]), str(data["identity"]), str(data["key"]))


def is_gallery(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a gallery directory written by ``facefit gallery``."""
    from facefit.gallery.manifest import FORMAT, MANIFEST_NAME

    manifest = Path(path) / MANIFEST_NAME
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_mugshots(
    source: str | os.PathLike[str],
    *,
    identities: str | os.PathLike[str] | None = None,
    image_column: str | None = None,
    identity_column: str | None = None,
    registry: Any = None,
) -> tuple[list[Mugshot], str]:
    """The mugshots of ``source``, sorted by (identity, key), and the kind of source.

    The kind is ``"folders"``, ``"csv"`` or ``"gallery"``. The same file listed
    twice for one identity counts once; listed for two identities it is an error.
    """
    from facefit.gallery import build

    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: not found; give a folder of mugshots or a gallery directory")
    if not source.is_dir():
        raise InputError(
            f"{source}: is a file; give a folder of mugshots (DIR/<identity>/<image>, or "
            "with --identities CSV) or a gallery directory"
        )
    if identities is None and is_gallery(source):
        kind = "gallery"
        pairs = _gallery_faces(source, registry)
    else:
        if identities is not None:
            kind = "csv"
            items = build.from_csv(
                source, identities, image_column=image_column, identity_column=identity_column
            )
        else:
            kind = "folders"
            items = build.from_folders(source)
        pairs = [(item.path, item.identity, _key(item.path, source)) for item in items]
    seen: dict[Path, Mugshot] = {}
    for path, identity, key in pairs:
        path = Path(os.path.abspath(path))
        known = seen.get(path)
        if known is not None:
            if known.identity != identity:
                raise InputError(
                    f"{path}: listed for two identities ({known.identity!r} and {identity!r}); "
                    "each mugshot must show one person"
                )
            continue
        seen[path] = Mugshot(path, identity, key)
    mugshots = sorted(seen.values(), key=lambda m: (m.identity, m.key))
    if not mugshots:
        raise InputError(f"{source}: no mugshots found")
    return mugshots, kind


def _key(path: Path, root: Path) -> str:
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return Path(os.path.abspath(path)).as_posix()


def _gallery_faces(path: Path, registry: Any) -> list[tuple[Path, str, str]]:
    from facefit.gallery import GalleryIndex

    gallery = GalleryIndex.load(path, registry=registry, verify=False)
    faces = gallery.find()
    missing = [f for f in faces if not f.source]
    if missing:
        raise InputError(
            f"{path}: {len(missing)} of the gallery's faces have no source file recorded; "
            "the augmenter needs the original mugshots (rebuild the gallery from files)"
        )
    return [(Path(f.source), f.identity, Path(f.source).as_posix()) for f in faces]
