"""``facefit users``: the web app's accounts (add, list, disable, enable, passwd, token, unlock).

Run on the server, with the same ``--data`` folder as ``facefit serve`` (a
running server sees the change at once). Each change is written to the audit log
as done by ``cli``.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from facefit.cli.serve import DATA_OPTION, require_serve_extra

__all__ = ["users"]


class _Cli:
    """Who the audit log names for changes made here."""

    id = None

    def __init__(self) -> None:
        self.name = f"cli:{getpass.getuser()}"


def _open(data_dir: Path):
    require_serve_extra()
    from facefit.serve.audit import AuditLog
    from facefit.serve.auth import Tokens, Users
    from facefit.serve.db import Database
    from facefit.serve.settings import ServeSettings

    db = Database(ServeSettings(data_dir=data_dir).database)
    return Users(db), Tokens(db), AuditLog(db)


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


@click.group("users")
def users() -> None:
    """Accounts of the web app (facefit serve)."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["investigator", "admin"]),
    default="investigator",
    show_default=True,
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@DATA_OPTION
def add(name: str, role: str, password_stdin: bool, data_dir: Path) -> None:
    """Add a user (asks for a password of at least 10 characters)."""
    accounts, _, audit = _open(data_dir)
    user = accounts.add(name, _password(password_stdin), role=role)
    audit.record(_Cli(), "user.add", target=user.name, detail=f"role {role}")
    click.echo(f"added {user.name} ({user.role})")


@users.command("list")
@DATA_OPTION
def list_users(data_dir: Path) -> None:
    """List the users and their roles."""
    accounts, _, _ = _open(data_dir)
    for user in accounts.list():
        state = "disabled" if user.disabled else "active"
        click.echo(f"{user.name:<24} {user.role:<13} {state}")


def _set_disabled(name: str, data_dir: Path, disabled: bool) -> None:
    accounts, _, audit = _open(data_dir)
    user = accounts.set_disabled(name, disabled)
    action = "user.disable" if disabled else "user.enable"
    audit.record(_Cli(), action, target=user.name)
    click.echo(f"{user.name}: {'disabled (logged out everywhere)' if disabled else 'enabled'}")


@users.command("disable")
@click.argument("name")
@DATA_OPTION
def disable(name: str, data_dir: Path) -> None:
    """Disable a user: their sessions end and their API tokens stop working."""
    _set_disabled(name, data_dir, True)


@users.command("enable")
@click.argument("name")
@DATA_OPTION
def enable(name: str, data_dir: Path) -> None:
    """Enable a disabled user again."""
    _set_disabled(name, data_dir, False)


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@DATA_OPTION
def passwd(name: str, password_stdin: bool, data_dir: Path) -> None:
    """Set a user's password (their sessions end)."""
    accounts, _, audit = _open(data_dir)
    accounts.set_password(name, _password(password_stdin))
    audit.record(_Cli(), "user.passwd", target=name)
    click.echo(f"{name}: password changed")


@users.command("token")
@click.argument("name")
@click.option("--label", default="cli", show_default=True, help="What the token is for.")
@DATA_OPTION
def token(name: str, label: str, data_dir: Path) -> None:
    """Make an API token for a user and print it (shown once)."""
    from facefit.errors import InputError

    accounts, tokens, audit = _open(data_dir)
    user = accounts.get(name)
    if user is None:
        raise InputError(f"no user {name!r}; see `facefit users list`")
    secret = tokens.create(user, label)
    audit.record(_Cli(), "token.create", target=user.name, detail={"label": label})
    click.echo(secret)


@users.command("unlock")
@click.argument("name", required=False)
@click.option("--address", help="Unlock a client address instead of a user name.")
@DATA_OPTION
def unlock(name: str | None, address: str | None, data_dir: Path) -> None:
    """Lift the login throttle's lock on a user name (or --address) at once.

    The failed logins recorded for it are forgotten, so it may log in again now
    instead of after the cool-down. Give a user name or --address, not both."""
    from facefit.errors import InputError
    from facefit.serve.throttle import LoginThrottle

    if (name is None) == (address is None):
        raise InputError("facefit users unlock: give a user name or --address ADDRESS")
    name = name.strip().lower() if name is not None else None  # as the throttle counts it
    accounts, _, audit = _open(data_dir)
    forgotten = LoginThrottle(accounts.db).unlock(name=name, address=address)
    kind, value = ("name", name) if name is not None else ("address", address)
    audit.record(_Cli(), "login.unlock", target=value, detail={"kind": kind, "attempts": forgotten})
    click.echo(
        f"{value}: unlocked ({forgotten} recorded attempt{'s' * (forgotten != 1)} forgotten)"
    )
    if name is not None and accounts.get(name) is None:
        click.echo(f"note: there is no user {name!r} (see `facefit users list`)")
