"""Writing files so that a crash never leaves half of one, and reading their digests.

A write is atomic (a temporary file beside the target is renamed over it: a reader
sees the old file or the new one, never half of one) and durable (the file is
fsync'd before the rename and its directory after, so the new name survives a power
cut). Every temporary name holds :data:`TEMP_MARK`, so a crashed write's leftovers
can be found and removed. Plugins that write files (a retriever saving its index)
use the same marker.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from facefit.errors import InputError

__all__ = [
    "TEMP_MARK",
    "atomic_file",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "fsync_dir",
    "fsync_file",
    "open_regular",
    "read_into",
    "replaced_dir",
    "sha256_file",
    "temp_path",
]

TEMP_MARK = ".tmp-"
"""Part of every temporary file's name, so a crashed write's leftovers can be found."""


def fsync_file(path: Path) -> None:
    """Flush a file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new names, renames, deletions) to the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(target: Path) -> Path:
    """A fresh temporary name beside ``target`` (hidden, holding :data:`TEMP_MARK`)."""
    target = Path(target)
    return target.with_name(f".{target.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def _replacing(target: Path, mode: int | None) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it, durably, if the block succeeds."""
    tmp = temp_path(target)
    try:
        yield tmp
        fsync_file(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


@contextlib.contextmanager
def replaced_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh folder beside ``target`` to fill; if the block succeeds it takes
    ``target``'s place, else it is removed and ``target`` is untouched. The parent
    folder is created if needed.

    An existing ``target`` is renamed aside (a :func:`temp_path` name) before the new
    folder is renamed in, and deleted only then: it is never half deleted while no
    new folder stands in its place, and if the new one cannot be renamed in, the old
    one is put back.
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = temp_path(target)
    staging.mkdir()
    old = None
    try:
        yield staging
        if target.exists():
            old = temp_path(target)
            target.rename(old)
        try:
            staging.rename(target)
        except BaseException:
            if old is not None:
                old.rename(target)
                old = None
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write(
    target: str | os.PathLike[str], write: Callable[[Path], object], *, mode: int | None = None
) -> Path:
    """Have ``write(path)`` write a temporary file, then put it in ``target``'s place.

    For writers that want a path (``torch.save``, an image library). The file is
    fsync'd, given ``mode`` when set, renamed over ``target`` and its directory
    fsync'd; if ``write`` raises, the temporary file is removed and ``target`` is
    untouched. The folder must exist. Returns ``target``.
    """
    target = Path(target)
    with _replacing(target, mode) as tmp:
        write(tmp)
    return target


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str], *, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file to write that replaces ``target`` when the block ends without error.

    Raising inside the block (a checksum that does not match, a full disk) leaves
    ``target`` as it was and removes the temporary file.
    """
    with _replacing(Path(target), mode) as tmp, open(tmp, "wb") as handle:
        yield handle


def atomic_write_bytes(
    target: str | os.PathLike[str], data: bytes, *, mode: int | None = None
) -> Path:
    """Replace ``target`` with ``data`` atomically and durably; return ``target``."""
    with atomic_file(target, mode=mode) as handle:
        handle.write(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Replace ``target`` with ``text`` (UTF-8) atomically and durably; return ``target``."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def read_into(digest: Any, handle: BinaryIO, chunk: int = 1 << 20) -> None:
    """Feed an open binary file to a ``hashlib`` object, ``chunk`` bytes at a time."""
    while block := handle.read(chunk):
        digest.update(block)


def open_regular(path: str | os.PathLike[str], what: str = "file") -> BinaryIO:
    """Open a regular file for reading in binary, or raise :class:`InputError`.

    A FIFO, socket or device is refused instead of read: reading a FIFO that no
    process writes to would wait forever (a folder of images may hold one named
    ``*.jpg``). The file is opened without blocking and checked on the open
    descriptor, so nothing can swap it in between. ``what`` names the file in errors.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: not a {what} but a folder") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open the {what} ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else _special_kind(mode)
        raise InputError(f"{path}: not a {what} but {kind}; give a regular {what}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def sha256_file(path: str | os.PathLike[str], what: str = "file", chunk: int = 1 << 20) -> str:
    """Hex sha256 of a regular file's content (:func:`open_regular`: a FIFO is refused)."""
    digest = hashlib.sha256()
    with open_regular(path, what) as handle:
        read_into(digest, handle, chunk)
    return digest.hexdigest()
