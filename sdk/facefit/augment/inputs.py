"""Which mugshots to augment, and whose face each one shows.

Three sources of files, read the way ``facefit gallery build`` reads them:

- a folder laid out ``DIR/<identity>/<image>`` (images deeper down belong to the
  first-level folder);
- a folder plus a CSV naming each image's identity (``image,identity`` columns,
  paths relative to the folder; :func:`facefit.gallery.build.from_csv`);
- a gallery directory made by ``facefit gallery build``: its metadata gives each
  face's source file and identity.

And the photos the sketch matcher trains on, from a data folder
(:class:`TrainingPhotos`: the CelebA training identities and the FS2K training
pairs of :mod:`facefit.datasets.splits`). With a data folder known, every mugshot is checked
against what it holds out (:class:`HeldOut`, :func:`refuse_held_out`).

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

__all__ = [
    "TRAINING_SOURCES",
    "HeldOut",
    "Mugshot",
    "TrainingPhotos",
    "is_gallery",
    "read_mugshots",
    "refuse_held_out",
]


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


# -- the photos the sketch matcher trains on ---------------------------------------------------

TRAINING_SOURCES = ("celeba-train", "fs2k-train")
"""``celeba-train``: every photo of the CelebA training identities
(:func:`facefit.datasets.splits.celeba_split` ``.train``); ``fs2k-train``: the FS2K photos the
matcher trains on (:func:`facefit.datasets.splits.fs2k_training`: no development pair, no
calibration pair)."""


@dataclass(frozen=True)
class TrainingPhotos:
    """The training photos of a data folder (``../shared/data`` layout) as a source.

    ``sources`` are names of :data:`TRAINING_SOURCES`. Identities are
    ``celeba/<identity>`` and ``fs2k/<pair id>``; keys are paths relative to
    ``data_dir`` (``celeba-subset/faces/000093.jpg``), so the matcher's reader finds
    each sketch's source photo, and so its person, by file name.
    """

    data_dir: Path
    sources: tuple[str, ...] = TRAINING_SOURCES

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        names = tuple(dict.fromkeys(str(s).strip().lower() for s in self.sources))
        unknown = [s for s in names if s not in TRAINING_SOURCES]
        if unknown or not names:
            raise InputError(
                f"--source {', '.join(unknown) or '(none)'}: unknown; use "
                f"{' or '.join(TRAINING_SOURCES)} (repeatable), with --data DIR"
            )
        object.__setattr__(self, "sources", names)

    def mugshots(self) -> list[Mugshot]:
        """The photos, sorted by (identity, key); the split is read from ``facefit.datasets.splits``."""
        from facefit.datasets import splits

        root = self.data_dir.resolve()
        if not root.is_dir():
            raise InputError(f"--data {self.data_dir}: not found; give the data folder")
        found: list[Mugshot] = []
        if "celeba-train" in self.sources:
            rows = {r["image"]: r["celeba_identity"] for r in splits.load_celeba_rows(root)}
            for image in splits.celeba_split(root).train:
                key = f"{splits.CELEBA_DIR}/faces/{image}"
                found.append(Mugshot(root / key, f"celeba/{rows[image]}", key))
        if "fs2k-train" in self.sources:
            records = {r["id"]: r for r in splits.load_fs2k_annotations(root)}
            for pair_id in splits.fs2k_training(root):
                key = f"{splits.FS2K_DIR}/{records[pair_id]['photo']}"
                found.append(Mugshot(root / key, f"fs2k/{pair_id}", key))
        return sorted(found, key=lambda m: (m.identity, m.key))

    def describe(self) -> dict[str, Any]:
        """The source as the job description records it (with the split's fingerprints)."""
        from facefit.datasets import splits

        root = self.data_dir.resolve()
        split: dict[str, str] = {}
        if "celeba-train" in self.sources:
            split["celeba_dev"] = splits.celeba_split(root).fingerprint
        if "fs2k-train" in self.sources:
            split["fs2k_dev"] = splits.fs2k_split(root).fingerprint
            split["fs2k_calibration"] = splits.fingerprint(splits.fs2k_calibration(root))
        return {"kind": "training-photos", "data": str(root), "sources": list(self.sources),
                "split": split}  # fmt: skip


@dataclass(frozen=True)
class HeldOut:
    """What no augmentation may draw from: the development split and the calibration slice.

    ``fs2k_dev``/``fs2k_calibration`` are FS2K pair ids, ``celeba_images`` CelebA image
    file names of the development identities, ``celeba_identities`` those identities.
    """

    fs2k_dev: frozenset[str] = frozenset()
    fs2k_calibration: frozenset[str] = frozenset()
    celeba_images: frozenset[str] = frozenset()
    celeba_identities: frozenset[str] = frozenset()

    @classmethod
    def of(cls, data_dir: str | os.PathLike[str]) -> HeldOut:
        """The held-out items of a data folder (whichever of FS2K and CelebA it has)."""
        from facefit.datasets import splits

        root = Path(data_dir)
        if not root.is_dir():
            raise InputError(f"--data {data_dir}: not found; give the data folder")
        fs2k_dev = fs2k_calibration = celeba_images = celeba_identities = frozenset()
        if (root / splits.FS2K_DIR / "annotations.json").is_file():
            fs2k_dev = frozenset(splits.fs2k_split(root).dev)
            fs2k_calibration = frozenset(splits.fs2k_calibration(root))
        if (root / splits.CELEBA_DIR / "identities.csv").is_file():
            celeba_images = frozenset(splits.celeba_split(root).dev)
            celeba_identities = frozenset(splits.dev_celeba_identities(root))
        return cls(fs2k_dev, fs2k_calibration, celeba_images, celeba_identities)

    def reason(self, mugshot: Mugshot) -> str | None:
        """Why ``mugshot`` is held out, or None. Matched by file name (as the matcher's
        reader matches synthetic sources) and by a ``celeba/<identity>`` identity."""
        name = mugshot.path.name
        stem = mugshot.path.stem
        if stem in self.fs2k_dev:
            return f"FS2K development pair {stem}"
        if stem in self.fs2k_calibration:
            return f"FS2K calibration pair {stem}"
        if name in self.celeba_images:
            return f"CelebA development image {name}"
        prefix, _, identity = mugshot.identity.partition("/")
        if prefix == "celeba" and identity in self.celeba_identities:
            return f"CelebA development identity {identity}"
        return None


def refuse_held_out(mugshots: list[Mugshot], held: HeldOut) -> None:
    """Raise :class:`InputError` when any mugshot is a development or calibration item.

    Synthetic sketches train the matcher, so drawing them from a held-out photo
    would leak it into training (:mod:`facefit.datasets.splits`).
    """
    bad = [(m, why) for m in mugshots if (why := held.reason(m)) is not None]
    if bad:
        shown = "; ".join(f"{m.key}: {why}" for m, why in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InputError(
            f"{len(bad)} of the {len(mugshots)} mugshots are held out ({shown}{more}); "
            "sketches for matcher training must never be drawn from the development split "
            "or the calibration slice: leave them out, or use --source celeba-train / "
            "fs2k-train"
        )
