"""Users, passwords, login sessions, API tokens and CSRF tokens.

Passwords are hashed with Argon2id (``argon2-cffi``). A login creates a session: a
random cookie value whose sha256 is stored with the user, an expiry and the
session's CSRF token, which every form and htmx request must send back. API
clients send ``Authorization: Bearer TOKEN``; tokens too are stored only as
sha256. Nothing secret is ever written to the database in the clear.

Two roles: ``investigator`` (their own cases and those shared with them) and
``admin`` (every case, the audit log, users).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from facefit.errors import InputError
from facefit.serve.db import Database, now

__all__ = ["ROLES", "Session", "Sessions", "Tokens", "User", "Users"]

ROLES = ("investigator", "admin")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 10


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


@dataclass(frozen=True)
class User:
    """A user as the app sees one (never with the password hash)."""

    id: int
    name: str
    role: str
    disabled: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(int(row["id"]), row["name"], row["role"], bool(row["disabled"]))


class Users:
    """The ``users`` table: add, list, disable, check passwords."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._hasher = _hasher()

    def add(self, name: str, password: str, role: str = "investigator") -> User:
        """Create a user; the name is lower-case letters, digits, ``.``, ``_``, ``-``."""
        if not NAME.match(name or ""):
            raise InputError(
                f"user name {name!r}: use 2-32 lower-case letters, digits, '.', '_' or '-'"
            )
        if role not in ROLES:
            raise InputError(f"role {role!r}: use one of {', '.join(ROLES)}")
        if len(password or "") < MIN_PASSWORD:
            raise InputError(f"password for {name!r}: use at least {MIN_PASSWORD} characters")
        if self.get(name) is not None:
            raise InputError(f"user {name!r} exists already")
        cursor = self.db.execute(
            "INSERT INTO users (name, role, password_hash, created) VALUES (?, ?, ?, ?)",
            (name, role, self._hasher.hash(password), now()),
        )
        return User(int(cursor.lastrowid), name, role)

    def get(self, name: str) -> User | None:
        row = self.db.one("SELECT * FROM users WHERE name = ?", (name,))
        return User.from_row(row) if row else None

    def by_id(self, user_id: int) -> User | None:
        row = self.db.one("SELECT * FROM users WHERE id = ?", (user_id,))
        return User.from_row(row) if row else None

    def list(self) -> list[User]:
        return [User.from_row(r) for r in self.db.all("SELECT * FROM users ORDER BY name")]

    def count(self) -> int:
        return int(self.db.one("SELECT COUNT(*) FROM users")[0])

    def set_disabled(self, name: str, disabled: bool = True) -> User:
        """Disable (or enable) a user; a disabled user's sessions and tokens stop working."""
        user = self.get(name)
        if user is None:
            raise InputError(f"no user {name!r}; see `facefit users list`")
        self.db.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user.id))
        if disabled:
            self.db.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
        return User(user.id, user.name, user.role, disabled)

    def set_password(self, name: str, password: str) -> None:
        user = self.get(name)
        if user is None:
            raise InputError(f"no user {name!r}; see `facefit users list`")
        if len(password or "") < MIN_PASSWORD:
            raise InputError(f"password for {name!r}: use at least {MIN_PASSWORD} characters")
        self.db.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?",
            (self._hasher.hash(password), user.id),
        )
        self.db.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password is right and the user is enabled, else None."""
        from argon2.exceptions import InvalidHashError, VerificationError

        row = self.db.one("SELECT * FROM users WHERE name = ?", (name,))
        if row is None:
            self._hasher.hash(password or "-")  # same work either way: no user-name oracle
            return None
        try:
            self._hasher.verify(row["password_hash"], password or "")
        except (VerificationError, InvalidHashError):
            return None
        if row["disabled"]:
            return None
        if self._hasher.check_needs_rehash(row["password_hash"]):
            self.db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?",
                (self._hasher.hash(password), row["id"]),
            )
        return User.from_row(row)


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str


class Sessions:
    """Login sessions (cookie value → user, CSRF token, expiry)."""

    def __init__(self, db: Database, hours: float = 12.0) -> None:
        self.db = db
        self.seconds = float(hours) * 3600.0

    def create(self, user: User) -> tuple[str, str]:
        """A new session for ``user``: (cookie value, CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
        self.db.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, expires) VALUES (?, ?, ?, ?)",
            (_sha256(token), user.id, csrf, time.time() + self.seconds),
        )
        return token, csrf

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value, or None (expired, unknown, user disabled)."""
        if not token:
            return None
        row = self.db.one(
            "SELECT s.csrf, s.expires, u.* FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.token_hash = ?",
            (_sha256(token),),
        )
        if row is None or row["expires"] < time.time() or row["disabled"]:
            return None
        return Session(User.from_row(row), row["csrf"])

    def delete(self, token: str | None) -> None:
        if token:
            self.db.execute("DELETE FROM sessions WHERE token_hash = ?", (_sha256(token),))


class Tokens:
    """API tokens (``Authorization: Bearer``): created once, shown once, revocable."""

    PREFIX = "ff_"

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, user: User, label: str = "api") -> str:
        token = self.PREFIX + secrets.token_urlsafe(32)
        self.db.execute(
            "INSERT INTO api_tokens (token_hash, user_id, label, created) VALUES (?, ?, ?, ?)",
            (_sha256(token), user.id, label[:100] or "api", now()),
        )
        return token

    def user(self, token: str | None) -> User | None:
        if not token or not token.startswith(self.PREFIX):
            return None
        row = self.db.one(
            "SELECT u.* FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.token_hash = ? AND t.revoked = 0",
            (_sha256(token),),
        )
        if row is None or row["disabled"]:
            return None
        return User.from_row(row)

    def revoke(self, token: str) -> bool:
        cursor = self.db.execute(
            "UPDATE api_tokens SET revoked = 1 WHERE token_hash = ?", (_sha256(token),)
        )
        return cursor.rowcount > 0

    def list(self, user: User, current: str | None = None) -> list[dict[str, Any]]:
        """A user's tokens, newest first: id, label, created, revoked (never the secret).

        ``current`` (a token's secret) marks the one a request came with."""
        rows = self.db.all(
            "SELECT rowid AS id, token_hash, label, created, revoked FROM api_tokens "
            "WHERE user_id = ? ORDER BY rowid DESC",
            (user.id,),
        )
        mine = _sha256(current) if current else None
        return [
            {
                "id": int(r["id"]),
                "label": r["label"],
                "created": r["created"],
                "revoked": bool(r["revoked"]),
                "current": r["token_hash"] == mine,
            }
            for r in rows
        ]

    def revoke_id(self, user: User, token_id: int) -> dict[str, Any] | None:
        """Revoke one of ``user``'s own tokens by its id; None when it is not theirs."""
        row = self.db.one(
            "SELECT rowid AS id, label FROM api_tokens WHERE rowid = ? AND user_id = ?",
            (int(token_id), user.id),
        )
        if row is None:
            return None
        self.db.execute("UPDATE api_tokens SET revoked = 1 WHERE rowid = ?", (int(row["id"]),))
        return {"id": int(row["id"]), "label": row["label"], "revoked": True}
