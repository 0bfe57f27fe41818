"""Enrolling image files into a gallery: who each image is, and embedding them.

Identities come from the folder layout ``DIR/<identity>/<image>`` (images deeper
down belong to the first-level folder) or from a CSV with an image column (paths
relative to ``DIR``) and an identity column. An image that cannot be used (no
face found, unreadable, missing, already in the gallery) is skipped and reported,
never fatal: one bad photo must not stop the enrolment of ten thousand.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from facefit.errors import InputError
from facefit.files import open_regular, sha256_file
from facefit.gallery.errors import GalleryError

if TYPE_CHECKING:
    from facefit.gallery.index import GalleryIndex
    from facefit.imaging.faces import FaceEmbedder

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".pnm", ".tif", ".tiff", ".webp"}
)
IMAGE_COLUMNS = ("image", "path", "file", "filename")
IDENTITY_COLUMNS = ("identity", "celeba_identity", "person", "name", "id", "label")


@dataclass(frozen=True)
class Enrolment:
    """One image to add and the identity it shows."""

    path: Path
    identity: str


@dataclass
class EnrolReport:
    """What an enrolment did: faces added, and each image skipped with the reason."""

    added: int = 0
    identities: set[str] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def no_face(self) -> list[tuple[str, str]]:
        return [(p, why) for p, why in self.skipped if "no face" in why]


def images_under(directory: Path) -> list[Path]:
    """Image files below ``directory`` (by suffix, hidden files left out), sorted.

    Only regular files (or links to them) are listed: a FIFO, socket or device named
    ``*.jpg`` is left out with a warning, since reading a FIFO waits forever.
    """
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if path.is_file():
                found.append(path)
            elif path.exists():
                log.warning("%s: not a regular file (a FIFO, socket or device); left out", path)
    return sorted(found)


def from_folders(directory: str | Path) -> list[Enrolment]:
    """``DIR/<identity>/...`` → one enrolment per image, identity = first-level folder name."""
    directory = _existing_dir(directory)
    items = []
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        items += [Enrolment(path, sub.name) for path in images_under(sub)]
    if not items:
        loose = len([p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES])
        hint = f" ({loose} images lie directly in it)" if loose else ""
        raise GalleryError(
            f"{directory}: no images in identity sub-folders{hint}; lay it out as "
            "DIR/<identity>/<image>, or name the identities in a CSV (--identities)"
        )
    return items


def from_csv(
    directory: str | Path,
    csv_path: str | Path,
    *,
    image_column: str | None = None,
    identity_column: str | None = None,
) -> list[Enrolment]:
    """Rows of a CSV → enrolments; image paths are relative to ``directory``."""
    directory = _existing_dir(directory)
    csv_path = Path(csv_path)
    try:
        with io.TextIOWrapper(
            open_regular(csv_path, "CSV file"), encoding="utf-8-sig", newline=""
        ) as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            image_column = _column(columns, image_column, IMAGE_COLUMNS, "image", csv_path)
            identity_column = _column(
                columns, identity_column, IDENTITY_COLUMNS, "identity", csv_path
            )
            rows = list(reader)
    except InputError as exc:
        raise GalleryError(str(exc)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GalleryError(f"{csv_path}: cannot read the identities CSV ({exc})") from None
    items = []
    for line, row in enumerate(rows, start=2):
        image, identity = (
            (row.get(image_column) or "").strip(),
            (row.get(identity_column) or "").strip(),
        )
        if not image or not identity:
            raise GalleryError(
                f"{csv_path}, line {line}: empty {image_column!r} or {identity_column!r}"
            )
        path = directory / image
        if path.exists() and not path.is_file():
            raise GalleryError(
                f"{csv_path}, line {line}: {path} is not a regular file (a folder, FIFO or "
                "device); list image files only"
            )
        items.append(Enrolment(path, identity))
    if not items:
        raise GalleryError(f"{csv_path}: no rows")
    return items


def of_one_identity(paths: Iterable[str | Path], identity: str) -> list[Enrolment]:
    """Image files, and the images under folders, all of one identity."""
    items = []
    for p in map(Path, paths):
        found = images_under(p) if p.is_dir() else [p]
        items += [Enrolment(path, identity) for path in found]
    return items


def enrol(
    gallery: GalleryIndex,
    embedder: FaceEmbedder,
    items: Sequence[Enrolment],
    *,
    chunk: int = 64,
    progress: bool = True,
    skip_duplicates: bool = True,
) -> EnrolReport:
    """Embed ``items`` and add them to ``gallery``; return what was added and skipped.

    ``skip_duplicates`` skips an image whose sha256 the gallery (or this batch)
    already holds. Faces are added ``chunk`` at a time, so a long enrolment is
    searchable as it goes.
    """
    gallery.check_encoder(embedder.encoder)
    report = EnrolReport()
    seen: set[str] = set()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="enrolling", unit="image")
    try:
        for start in range(0, len(items), chunk):
            batch: list[tuple[Enrolment, str]] = []
            for item in items[start : start + chunk]:
                try:
                    digest = sha256_file(item.path)
                except InputError as exc:  # missing, a folder, a FIFO…
                    report.skipped.append((str(item.path), _reason(str(exc))))
                    continue
                except OSError as exc:
                    report.skipped.append((str(item.path), f"unreadable ({exc.strerror})"))
                    continue
                if skip_duplicates:
                    if digest in seen:
                        report.skipped.append(
                            (str(item.path), "duplicate of an image in this batch")
                        )
                        continue
                    known = gallery.find(sha256=digest)
                    if known:
                        report.skipped.append(
                            (str(item.path), f"already in the gallery as {known[0].identity!r}")
                        )
                        continue
                seen.add(digest)
                batch.append((item, digest))
            results = embedder.embed_files([str(item.path) for item, _ in batch])
            ok = [(item, digest, r) for (item, digest), r in zip(batch, results) if r.ok]
            for (item, _), r in zip(batch, results):
                if not r.ok:
                    report.skipped.append((str(item.path), _reason(r.error)))
            if ok:
                import numpy as np

                gallery.add(
                    np.stack([r.vector for _, _, r in ok]),
                    [item.identity for item, _, _ in ok],
                    sources=[str(item.path.resolve()) for item, _, _ in ok],
                    sha256s=[digest for _, digest, _ in ok],
                    metadata=[{"fallback": True} if r.fallback else {} for _, _, r in ok],
                )
                report.added += len(ok)
                report.identities.update(item.identity for item, _, _ in ok)
            if bar is not None:
                bar.update(min(chunk, len(items) - start))
    finally:
        if bar is not None:
            bar.close()
    return report


def _reason(error: str | None) -> str:
    """The error without the path it starts with (the report shows the path)."""
    text = error or "unknown error"
    head, sep, tail = text.partition(": ")
    return tail if sep and ("/" in head or "\\" in head or "." in head) else text


def _column(
    columns: list[str], given: str | None, candidates: Sequence[str], what: str, where: Path
) -> str:
    if given is not None:
        if given not in columns:
            raise GalleryError(f"{where}: no column {given!r}; columns: {', '.join(columns)}")
        return given
    lower = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise GalleryError(
        f"{where}: cannot tell which column holds the {what}; columns: {', '.join(columns)} "
        f"(name it with --{what}-column)"
    )


def _existing_dir(directory: str | Path) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise GalleryError(f"{directory}: not a directory of images")
    return directory


def open_or_build(
    path: str | Path,
    images: str | Path,
    *,
    identities: str | Path | None = None,
    embedder: FaceEmbedder | None = None,
    registry: object = None,
    retriever: str = "auto",
    progress: bool = False,
    **options: object,
) -> GalleryIndex:
    """The gallery saved at ``path``; if there is none yet, build it from ``images`` and save it.

    ``images`` is laid out as ``DIR/<identity>/<image>``, or named by the
    ``identities`` CSV (as ``facefit gallery build``). ``embedder`` (default: the
    registry's YuNet + SFace) embeds the images, and an existing gallery built with
    another encoder is refused. A non-empty ``path`` that is not a gallery is an
    error, never overwritten. If another process saves a gallery at ``path`` while
    this one builds, that one is opened instead.
    """
    from facefit.gallery.index import GalleryIndex
    from facefit.gallery.manifest import MANIFEST_NAME
    from facefit.imaging.faces import FaceEmbedder

    path = Path(path)
    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    if embedder is None:
        embedder = FaceEmbedder.from_registry(registry)
    if (path / MANIFEST_NAME).is_file() or (path.exists() and any(path.iterdir())):
        return GalleryIndex.load(path, encoder=embedder.encoder, registry=registry)
    items = from_csv(images, identities) if identities is not None else from_folders(images)
    index = GalleryIndex.create(
        embedder.encoder,
        retriever=retriever,
        expected_faces=len(items),
        registry=registry,
        **options,
    )
    report = enrol(index, embedder, items, progress=progress)
    if not report.added:
        raise GalleryError(f"{images}: no face could be enrolled from {len(items)} images")
    if report.skipped:
        log.warning("%s: skipped %d of %d images", images, len(report.skipped), len(items))
    try:
        index.save(path)
    except GalleryError:
        if not (path / MANIFEST_NAME).is_file():
            raise
        log.info("%s: another process saved a gallery here first; opening it", path)
        return GalleryIndex.load(path, encoder=embedder.encoder, registry=registry)
    return index
