"""Login throttling: too many failed logins for a user name or from an address cool down.

Password guessing at the login form and at ``POST /api/v1/tokens`` is limited the
way maintained tools limit it (fail2ban, django-axes): when a user name has had
``max_per_name`` failed logins within ``window`` seconds, or a client address
``max_per_address``, further attempts for that name (or from that address) are
refused for ``cooldown`` seconds — even with the right password — and the
refusal says when to try again (HTTP 429, ``Retry-After``).

The state lives in the server's SQLite database (table ``login_attempts``), so it
survives a restart and is shared by several server processes. Every attempt is
written *before* the password is checked, in one ``BEGIN IMMEDIATE`` transaction
with the check, so parallel guesses cannot slip past the limit while Argon2
works; a successful login deletes the attempts recorded for its user name (the
user's count starts again), a failed one leaves its row.

Names are counted whether or not such a user exists, and a refusal is decided
before any password is checked, so a refusal says nothing about whether the
user exists.

An admin lifts a lock at once with :meth:`LoginThrottle.unlock` (``facefit users
unlock NAME`` or ``--address ADDR``, or the *Users* page): the attempts recorded
for that name, or from that address, are forgotten, as a successful login
forgets a name's. :meth:`LoginThrottle.locks` lists what is locked now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from facefit.serve.db import Database

__all__ = ["Attempt", "Lock", "LoginThrottle", "Refusal"]

NAME_LIMIT = 64
"""Characters of a user name kept (names are at most 32; anything longer is a guess)."""


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is refused, and until when (seconds since the epoch)."""

    reason: str
    """``"name"`` (too many failures for this user name) or ``"address"``."""
    until: float
    failures: int

    def retry_after(self, now: float) -> int:
        """Whole seconds until an attempt is accepted again (at least 1)."""
        return max(1, int(self.until - now + 0.999))

    @property
    def until_text(self) -> str:
        return datetime.fromtimestamp(self.until, UTC).strftime("%H:%M:%S UTC")

    def message(self, now: float) -> str:
        """The words the refusal shows; the same whether or not the user exists."""
        wait = self.retry_after(now)
        minutes = f"{(wait + 59) // 60} minute{'s' if wait > 60 else ''}"
        return (
            "Too many failed logins for this user name or from this address. "
            f"Try again after {self.until_text} (in about {minutes}); "
            "an administrator can lift the lock at once (Users page, `facefit users unlock`) "
            "or reset a forgotten password (`facefit users passwd`)."
        )


@dataclass(frozen=True)
class Attempt:
    """An accepted attempt: its row, to be settled with :meth:`LoginThrottle.succeeded`."""

    id: int
    name: str
    address: str | None


@dataclass(frozen=True)
class Lock:
    """A user name or an address that is cooling down now (see :meth:`LoginThrottle.locks`)."""

    kind: str
    """``"name"`` or ``"address"``."""
    value: str
    until: float
    failures: int

    @property
    def until_text(self) -> str:
        return datetime.fromtimestamp(self.until, UTC).strftime("%H:%M:%S UTC")

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "value": self.value,
            "until": datetime.fromtimestamp(self.until, UTC).isoformat(timespec="seconds"),
            "failures": self.failures,
        }


def _key(name: str) -> str:
    return (name or "").strip().lower()[:NAME_LIMIT]


class LoginThrottle:
    """The ``login_attempts`` table; ``clock`` (seconds since the epoch) is injectable for tests."""

    def __init__(
        self,
        db: Database,
        *,
        max_per_name: int = 5,
        max_per_address: int = 20,
        window: float = 900.0,
        cooldown: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.max_per_name = int(max_per_name)
        self.max_per_address = int(max_per_address)
        self.window = float(window)
        self.cooldown = float(cooldown)
        self.clock = clock

    def _locked_until(self, times: list[float], limit: int) -> float | None:
        """When the cool-down started by ``limit`` failures within the window ends, or None."""
        until = None
        for i in range(limit - 1, len(times)):
            if times[i] - times[i - limit + 1] <= self.window:
                until = times[i] + self.cooldown
        return until

    def _refusal(self, conn: object, name: str, address: str | None, now: float) -> Refusal | None:
        since = now - self.window - self.cooldown  # older rows can no longer lock anything
        checks = [("name", "name = ?", name, self.max_per_name)]
        if address:
            checks.append(("address", "address = ?", address, self.max_per_address))
        refusals = []
        for reason, where, value, limit in checks:
            rows = conn.execute(
                f"SELECT at FROM login_attempts WHERE {where} AND at > ? ORDER BY at",
                (value, since),
            ).fetchall()
            times = [float(r["at"]) for r in rows]
            until = self._locked_until(times, limit)
            if until is not None and now < until:
                refusals.append(Refusal(reason, until, len(times)))
        return max(refusals, key=lambda r: r.until) if refusals else None

    def begin(self, name: str, address: str | None) -> Attempt | Refusal:
        """Record an attempt before its password is checked, or refuse it (cooling down)."""
        key, now = _key(name), float(self.clock())
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM login_attempts WHERE at < ?", (now - self.window - self.cooldown,)
            )
            refusal = self._refusal(conn, key, address, now)
            if refusal is not None:
                return refusal
            cursor = conn.execute(
                "INSERT INTO login_attempts (at, name, address) VALUES (?, ?, ?)",
                (now, key, address),
            )
            return Attempt(int(cursor.lastrowid), key, address)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the user name's failures are forgotten."""
        self.db.execute("DELETE FROM login_attempts WHERE name = ?", (attempt.name,))

    def failures(self, name: str | None = None, address: str | None = None) -> int:
        """Failed attempts recorded within the window (for a name, an address, or all)."""
        where, params = ["at > ?"], [float(self.clock()) - self.window]
        if name is not None:
            where.append("name = ?")
            params.append(_key(name))
        if address is not None:
            where.append("address = ?")
            params.append(address)
        sql = "SELECT COUNT(*) FROM login_attempts WHERE " + " AND ".join(where)
        return int(self.db.one(sql, tuple(params))[0])

    def locks(self) -> list[Lock]:
        """The user names and addresses refused now, the latest cool-down first."""
        now = float(self.clock())
        rows = self.db.all(
            "SELECT at, name, address FROM login_attempts WHERE at > ? ORDER BY at",
            (now - self.window - self.cooldown,),
        )
        found = []
        for kind, limit in (("name", self.max_per_name), ("address", self.max_per_address)):
            times: dict[str, list[float]] = {}
            for row in rows:
                if row[kind]:
                    times.setdefault(row[kind], []).append(float(row["at"]))
            for value, seen in times.items():
                until = self._locked_until(seen, limit)
                if until is not None and now < until:
                    found.append(Lock(kind, value, until, len(seen)))
        return sorted(found, key=lambda lock: (-lock.until, lock.kind, lock.value))

    def unlock(self, *, name: str | None = None, address: str | None = None) -> int:
        """Forget the attempts recorded for a user name or from an address (an admin's unlock).

        Returns how many were forgotten; the name or address may log in again at once.
        Its rows also stop counting towards the other key (the address of a name's
        failures, the names tried from an address), as with a successful login."""
        if (name is None) == (address is None):
            raise ValueError("unlock a user name or an address")
        if name is not None:
            cursor = self.db.execute("DELETE FROM login_attempts WHERE name = ?", (_key(name),))
        else:
            cursor = self.db.execute(
                "DELETE FROM login_attempts WHERE address = ?", (address.strip(),)
            )
        return int(cursor.rowcount)
