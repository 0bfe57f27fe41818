"""The metadata store: who each face is and where it came from, in SQLite.

One row per face (its integer label, identity, source path, sha256 of the image
file and free-form JSON metadata) and one per identity. While a gallery is open
the store lives in memory; a save copies it whole into a new file (SQLite's backup
API), so the file on disk always matches the index saved with it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facefit.gallery.errors import CorruptGalleryError, GalleryError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE identities (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE faces (
    label INTEGER PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id),
    source TEXT,
    sha256 TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    added TEXT NOT NULL
);
CREATE INDEX faces_identity ON faces(identity_id);
CREATE INDEX faces_sha256 ON faces(sha256);
CREATE INDEX faces_source ON faces(source);
"""


@dataclass(frozen=True)
class FaceRecord:
    """What the gallery knows about one stored face."""

    label: int
    identity: str
    source: str | None = None
    sha256: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    added: str = ""


class MetadataStore:
    """Faces and identities in an in-memory SQLite database; safe to share between threads."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def new(cls) -> MetadataStore:
        conn = _memory()
        conn.executescript(_SCHEMA)
        conn.execute("INSERT INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return cls(conn)

    @classmethod
    def load(cls, path: Path) -> MetadataStore:
        """Copy a saved store into memory; a file that is not one is a :class:`CorruptGalleryError`."""
        conn = _memory()
        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                source.backup(conn)
            finally:
                source.close()
            row = conn.execute("SELECT value FROM info WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CorruptGalleryError(f"{path}: not a readable metadata store ({exc})") from None
        if row is None or int(row[0]) > SCHEMA_VERSION:
            raise CorruptGalleryError(f"{path}: unknown metadata schema {row and row[0]!r}")
        return cls(conn)

    def save(self, path: Path) -> None:
        """Write the whole store to a new file at ``path`` (the caller fsyncs it)."""
        target = sqlite3.connect(path)
        try:
            with self._lock:
                self._conn.backup(target)
        finally:
            target.close()

    def close(self) -> None:
        self._conn.close()

    # -- changes: add/remove run inside the caller's transaction ---------------------------

    def begin(self) -> None:
        self._lock.acquire()
        self._conn.execute("BEGIN")

    def commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        finally:
            self._lock.release()

    def rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        finally:
            self._lock.release()

    def identity_id(self, name: str) -> int:
        """The id of an identity, created if new (call between begin and commit)."""
        row = self._conn.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        return int(
            self._conn.execute("INSERT INTO identities (name) VALUES (?)", (name,)).lastrowid
        )

    def add(
        self,
        labels: Sequence[int],
        identity_ids: Sequence[int],
        sources: Sequence[str | None],
        sha256s: Sequence[str | None],
        metadata: Sequence[dict[str, Any]],
        added: str | Sequence[str] | None = None,
    ) -> None:
        """Insert faces; ``added`` (default: now) is one time stamp or one per face."""
        if added is None:
            added = datetime.now(UTC).isoformat(timespec="seconds")
        stamps = [added] * len(labels) if isinstance(added, str) else list(added)
        rows = []
        for i, label in enumerate(labels):
            try:
                text = json.dumps(metadata[i], sort_keys=True, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise GalleryError(f"metadata of face {i}: not JSON-serialisable ({exc})") from None
            rows.append((int(label), int(identity_ids[i]), sources[i], sha256s[i], text, stamps[i]))
        self._conn.executemany("INSERT INTO faces VALUES (?, ?, ?, ?, ?, ?)", rows)

    def remove(self, labels: Iterable[int]) -> None:
        """Delete faces, and identities left without a face."""
        self._conn.executemany("DELETE FROM faces WHERE label = ?", [(int(x),) for x in labels])
        self._conn.execute(
            "DELETE FROM identities WHERE id NOT IN (SELECT DISTINCT identity_id FROM faces)"
        )

    # -- reading ---------------------------------------------------------------------------

    def records(self, labels: Sequence[int]) -> dict[int, FaceRecord]:
        """Records of these labels (missing ones are left out)."""
        out: dict[int, FaceRecord] = {}
        labels = [int(x) for x in labels]
        with self._lock:
            for start in range(0, len(labels), 500):
                chunk = labels[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._conn.execute(f"{_SELECT} WHERE f.label IN ({marks})", chunk):
                    record = _record(row)
                    out[record.label] = record
        return out

    def find(
        self, *, identity: str | None = None, source: str | None = None, sha256: str | None = None
    ) -> list[FaceRecord]:
        """Faces matching every criterion given (all faces when none is), by label."""
        where, args = [], []
        for column, value in (("i.name", identity), ("f.source", source), ("f.sha256", sha256)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY f.label"
        with self._lock:
            return [_record(row) for row in self._conn.execute(sql, args)]

    def label_identities(self) -> Iterator[tuple[int, int]]:
        """``(label, identity id)`` of every face."""
        with self._lock:
            rows = self._conn.execute("SELECT label, identity_id FROM faces").fetchall()
        yield from rows

    def identity_names(self) -> dict[int, str]:
        with self._lock:
            return dict(self._conn.execute("SELECT id, name FROM identities").fetchall())

    def counts(self) -> tuple[int, int]:
        """``(faces, identities)``."""
        with self._lock:
            faces = self._conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
            identities = self._conn.execute("SELECT COUNT(*) FROM identities").fetchone()[0]
        return int(faces), int(identities)


_SELECT = (
    "SELECT f.label, i.name, f.source, f.sha256, f.metadata, f.added "
    "FROM faces f JOIN identities i ON i.id = f.identity_id"
)


def _record(row: tuple) -> FaceRecord:
    return FaceRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])


def _memory() -> sqlite3.Connection:
    # autocommit mode: transactions are explicit (begin/commit); one connection is
    # shared by reader threads under the store's lock
    return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
