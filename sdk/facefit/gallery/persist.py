"""How a gallery directory is written and read back.

Layout::

    GALLERY/
      manifest.json                 written last; names every file below
      index.g000007.hnsw            the retriever's files (exact: .vectors.npy, .labels.npy)
      index.g000007.deleted.npy
      metadata.g000007.sqlite       the metadata store
      .lock                         advisory lock: saves exclusive, loads shared
      .writer.lock                  held by a process changing the gallery (CLI add…)

A save writes a new *generation*: files under names no manifest uses yet, each
fsynced, then the manifest is replaced atomically, then the previous generation's
files are deleted. A process killed at any point leaves a manifest naming a
complete set of files (the old set or the new one); files of an unfinished save
are swept by the next one.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from facefit.files import TEMP_MARK, atomic_write_bytes, fsync_dir, fsync_file, sha256_file
from facefit.gallery.atomic import LOCK_NAME, WRITER_LOCK_NAME
from facefit.gallery.errors import CorruptGalleryError, GalleryError
from facefit.gallery.manifest import MANIFEST_NAME, FileRecord, Manifest

log = logging.getLogger(__name__)

_OWNED_PREFIXES = ("index.", "metadata.")
"""Names this module may delete when no manifest refers to them; nothing else is touched."""


def stems(generation: int) -> tuple[str, str]:
    """File-name stems of a generation's index and metadata store."""
    return f"index.g{generation:06d}", f"metadata.g{generation:06d}"


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest of ``directory``, or None when it has none."""
    path = directory / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GalleryError(f"{path}: cannot read ({exc})") from None
    return Manifest.from_json(data, str(path))


def record(directory: Path, name: str) -> FileRecord:
    """Fsync a freshly written file and describe it for the manifest."""
    path = directory / name
    fsync_file(path)
    return FileRecord(name, path.stat().st_size, sha256_file(path))


def write_generation(
    directory: Path,
    write_index: Callable[[Path, str], list[str]],
    write_metadata: Callable[[Path], None],
    make_manifest: Callable[[dict[str, tuple[FileRecord, ...]]], Manifest],
    generation: int,
) -> Manifest:
    """Write one generation's files, then its manifest; return the manifest written."""
    index_stem, metadata_stem = stems(generation)
    sweep(directory, keep=set())  # leftovers of a save that died, possibly this generation's
    index_names = write_index(directory, index_stem)
    metadata_name = f"{metadata_stem}.sqlite"
    write_metadata(directory / metadata_name)
    files = {
        "index": tuple(record(directory, name) for name in index_names),
        "metadata": (record(directory, metadata_name),),
    }
    fsync_dir(directory)
    manifest = make_manifest(files)
    atomic_write_bytes(directory / MANIFEST_NAME, manifest.to_json())
    sweep(directory, keep={f.name for f in manifest.all_files()})
    return manifest


def sweep(directory: Path, keep: set[str]) -> None:
    """Delete files this module owns that are neither in ``keep`` nor in the current manifest."""
    current = read_manifest_quietly(directory)
    if current is not None:
        keep = keep | {f.name for f in current.all_files()}
    removed = False
    for path in directory.iterdir():
        name = path.name
        if not owned(name) or name in (LOCK_NAME, WRITER_LOCK_NAME) or name in keep:
            continue
        if path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed = True
        elif path.is_dir() and not path.is_symlink() and TEMP_MARK in name:
            shutil.rmtree(path, ignore_errors=True)  # a retriever's scratch directory
            removed = True
    if removed:
        fsync_dir(directory)


def owned(name: str) -> bool:
    """Whether a file name is one a save writes (so a sweep may delete it)."""
    return (
        name.startswith(_OWNED_PREFIXES)
        or name in (LOCK_NAME, WRITER_LOCK_NAME)
        or (name.startswith(".") and TEMP_MARK in name)
    )


def read_manifest_quietly(directory: Path) -> Manifest | None:
    try:
        return read_manifest(directory)
    except GalleryError:
        return None


def verify_files(directory: Path, manifest: Manifest, *, checksums: bool = True) -> None:
    """Raise :class:`CorruptGalleryError` unless every file is there, whole and unchanged."""
    for f in manifest.all_files():
        path = directory / f.name
        advice = "restore the gallery from a backup or rebuild it with `facefit gallery build`"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise CorruptGalleryError(f"{directory}: file {f.name} is missing; {advice}") from None
        if size != f.size:
            raise CorruptGalleryError(
                f"{directory}: file {f.name} has {size} bytes, the manifest says {f.size} "
                f"(truncated or replaced); {advice}"
            )
        if checksums and sha256_file(path) != f.sha256:
            raise CorruptGalleryError(
                f"{directory}: file {f.name} does not match its checksum (corrupt); {advice}"
            )


def check_save_target(
    target: Path, current: Manifest | None, same: bool, loaded: int, overwrite: bool
) -> None:
    """Refuse a save that would clobber something (see :meth:`GalleryIndex.save`).

    ``same``: the target is where this gallery was loaded from, at generation ``loaded``.
    """
    if current is None:
        if (target / MANIFEST_NAME).exists() and not overwrite:
            raise CorruptGalleryError(
                f"{target}: holds a damaged gallery; pass overwrite=True (--force) to replace it"
            )
        check_not_foreign(target)
    elif same:
        if current.generation != loaded:
            raise GalleryError(
                f"{target}: saved by another process since this gallery was loaded "
                f"(generation {current.generation}, loaded {loaded}); load it again and "
                "repeat the changes"
            )
    elif not overwrite:
        raise GalleryError(
            f"{target}: already holds a gallery; pass overwrite=True (--force) to replace it"
        )


def check_not_foreign(target: Path) -> None:
    """Refuse a directory that holds files a gallery save does not own and no manifest.

    Called before a save takes its lock, so a refused save leaves nothing behind
    (not even a ``.lock`` file) in someone else's folder.
    """
    if (target / MANIFEST_NAME).exists():
        return
    others = sorted(p.name for p in target.iterdir() if not owned(p.name))
    if others:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise GalleryError(
            f"{target}: directory is not empty and not a gallery (it holds {shown}); "
            "nothing there is replaced, even when told to overwrite: choose a new directory"
        )


def describe_missing_manifest(directory: Path) -> str:
    """Why ``directory`` cannot be opened as a gallery when it has no manifest, and what to do."""
    names = sorted(p.name for p in directory.iterdir())
    data = [n for n in names if n.startswith(_OWNED_PREFIXES)]
    if data:
        shown = ", ".join(data[:4]) + (", …" if len(data) > 4 else "")
        return (
            f"{directory}: holds gallery files ({shown}) but its {MANIFEST_NAME} is missing, "
            f"so they cannot be checked or opened. Restore {MANIFEST_NAME} from a backup of "
            "this gallery; do not build a new gallery over this folder, these files may be "
            "all that is left of it (copy them somewhere safe first)"
        )
    if not [n for n in names if n not in (LOCK_NAME, WRITER_LOCK_NAME)]:
        return (
            f"{directory}: not a facefit gallery (an empty folder); build one into it with "
            f"`facefit gallery build IMAGES --out {directory}`"
        )
    return (
        f"{directory}: not a facefit gallery (no {MANIFEST_NAME} and no gallery files); "
        "give the folder `facefit gallery build --out` wrote"
    )
