"""The append-only audit log: who viewed, searched, exported or changed what, and when.

Every record names the user, the action (``case.view``, ``run.export`` …), the
case it touched, the outcome (``ok`` or ``denied``) and the client address. The
table refuses UPDATE and DELETE (a trigger, see :mod:`.db`), and each record
carries the sha256 of the previous record and of its own fields, so an edit made
to the file behind the server's back breaks the chain that :meth:`AuditLog.verify`
checks (the admin's audit page shows the result).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

from facefit.serve.db import Database, now

__all__ = ["AuditLog", "ChainCheck"]

GENESIS = "0" * 64
FIELDS = ("at", "user_id", "user_name", "action", "case_id", "target", "outcome", "detail", "ip")


def _digest(prev_hash: str, record: dict[str, Any]) -> str:
    payload = json.dumps([prev_hash, *(record[f] for f in FIELDS)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """The result of :meth:`AuditLog.verify`."""

    intact: bool
    records: int
    first_broken: int | None = None


class AuditLog:
    """Writes and reads the ``audit`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()  # one writer at a time keeps the chain linear

    def record(
        self,
        user: Any,
        action: str,
        *,
        case_id: int | None = None,
        target: str | None = None,
        outcome: str = "ok",
        detail: str | dict | None = None,
        ip: str | None = None,
    ) -> int:
        """Append one record; ``user`` is a :class:`~facefit.serve.auth.User` or None."""
        if isinstance(detail, dict):
            detail = json.dumps(detail, ensure_ascii=False, sort_keys=True)
        record = {
            "at": now(),
            "user_id": getattr(user, "id", None),
            "user_name": getattr(user, "name", None),
            "action": action,
            "case_id": case_id,
            "target": target,
            "outcome": outcome,
            "detail": detail,
            "ip": ip,
        }
        with self._lock, self.db.transaction() as conn:
            last = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            prev_hash = last["hash"] if last else GENESIS
            cursor = conn.execute(
                f"INSERT INTO audit ({', '.join(FIELDS)}, prev_hash, hash) "
                f"VALUES ({', '.join('?' * len(FIELDS))}, ?, ?)",
                (*(record[f] for f in FIELDS), prev_hash, _digest(prev_hash, record)),
            )
            return int(cursor.lastrowid)

    def entries(
        self,
        *,
        limit: int = 200,
        before: int | None = None,
        case_id: int | None = None,
        user_name: str | None = None,
        action: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest records first, filtered; ``before`` pages back by id."""
        where, params = [], []
        for column, value in (("case_id", case_id), ("user_name", user_name)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if action:
            where.append("action LIKE ?")
            params.append(f"{action}%")
        if before is not None:
            where.append("id < ?")
            params.append(before)
        sql = "SELECT * FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        return [dict(row) for row in self.db.all(sql, (*params, int(limit)))]

    def verify(self) -> ChainCheck:
        """Recompute every record's hash; report the first record that does not match."""
        prev_hash, count = GENESIS, 0
        for row in self.db.execute("SELECT * FROM audit ORDER BY id"):
            count += 1
            record = {f: row[f] for f in FIELDS}
            if row["prev_hash"] != prev_hash or row["hash"] != _digest(prev_hash, record):
                return ChainCheck(False, count, int(row["id"]))
            prev_hash = row["hash"]
        return ChainCheck(True, count)
