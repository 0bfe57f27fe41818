"""Cross-process locks on a gallery directory.

(The gallery's durable, atomic writes are :mod:`facefit.files`'.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from facefit.gallery.errors import GalleryError

LOCK_NAME = ".lock"
"""The lock file every load (shared) and save (exclusive) holds for a moment."""
WRITER_LOCK_NAME = ".writer.lock"
"""The lock a changing process holds from load to save (:func:`writer_lock`)."""


class GalleryLockTimeout(GalleryError):
    """Another process kept changing the gallery for longer than the caller would wait."""


@contextlib.contextmanager
def directory_lock(directory: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold an advisory lock on ``directory`` (shared to read, exclusive to write).

    Processes that load a gallery while another saves it then never see a manifest
    whose files are being cleaned up. A read-only directory without a lock file is
    read without locking (nobody can be writing it).
    """
    lock_path = Path(directory) / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if exclusive:
            raise
        try:
            fd = os.open(lock_path, os.O_RDONLY)
        except OSError:
            yield
            return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def writer_lock(
    directory: Path,
    *,
    timeout: float,
    poll: float = 0.1,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Be the only process changing the gallery in ``directory`` (load, change, save).

    Two processes that each load, add and save would otherwise both load the same
    generation, and the second save is refused ("saved by another process"). Holding
    this lock from before the load until after the save makes the second wait and
    then load the first one's result. Waits at most ``timeout`` seconds, calling
    ``on_wait`` once when it has to wait; then raises :class:`GalleryLockTimeout`.
    The lock is a separate file from :func:`directory_lock`'s, so loads and saves
    inside it still take theirs.
    """
    path = Path(directory) / WRITER_LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise GalleryError(
            f"{directory}: cannot take the gallery's writer lock ({exc.strerror}); "
            "is the gallery folder read-only?"
        ) from None
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise GalleryLockTimeout(
                        f"{directory}: another process is still changing this gallery after "
                        f"waiting {timeout:g} s; try again when it has finished"
                    ) from None
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                time.sleep(poll)
        yield
    finally:
        os.close(fd)  # closing releases the lock
