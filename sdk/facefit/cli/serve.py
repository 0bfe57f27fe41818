"""``facefit serve``: the investigator's web app and HTTP API (see docs/web.md).

facefit serve                                   # 127.0.0.1:8000, the bundled demo gallery
facefit serve -g mugshots=/srv/galleries/mugshots --data /srv/facefit --port 8080
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import click

from facefit.errors import InputError
from facefit.serve.settings import ServeSettings
from facefit.settings import default_of

__all__ = ["DATA_OPTION", "require_serve_extra", "serve"]

log = logging.getLogger(__name__)

KEEP_ALIVE = 30
"""Seconds an idle keep-alive connection stays open (uvicorn's default is 5). A client
polling a run every second, delayed past 5 s on a busy CPU, sent its next request
just as uvicorn closed the connection and got "connection reset" (seen here with the
docs' httpx example); 30 s keeps such clients on their connection."""


def require_serve_extra() -> None:
    """Fail with the install command when the ``serve`` extra is missing."""
    try:
        import argon2  # noqa: F401
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise InputError(
            f"facefit serve needs the 'serve' extra ({exc.name} is missing): "
            "pip install -c constraints.txt -e '.[serve]'"
        ) from None


def _data_default() -> Path:
    from facefit.serve.settings import DEFAULT_DATA_DIR

    return DEFAULT_DATA_DIR


def _setting(flag: str, field: str, help: str | None = None):
    """A ``facefit serve`` option for a :class:`ServeSettings` field: its default and type."""
    default = default_of(ServeSettings, field)
    return click.option(
        flag, field, default=default, show_default=True, type=type(default), help=help
    )


DATA_OPTION = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FACEFIT_SERVE_DATA",
    default=_data_default,
    show_default="~/.local/share/facefit/serve, or $FACEFIT_SERVE_DATA",
    help="Folder of the database and the stored files.",
)


def _galleries(values: tuple[str, ...]) -> dict[str, str]:
    from facefit.serve.settings import DEMO_GALLERY

    if not values:
        return {DEMO_GALLERY: DEMO_GALLERY}
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).name, value
        if not name or not path:
            raise InputError(f"--gallery {value!r}: use NAME=FOLDER (or {DEMO_GALLERY}=demo)")
        out[name] = path
    return out


def _first_admin(services: object) -> None:
    """On a fresh data folder: make an admin with a one-time password, printed once."""
    users = services.users
    if users.count():
        if not any(u.is_admin and not u.disabled for u in users.list()):
            click.secho(
                "no active admin account: nobody can read the audit log or unlock a login;\n"
                "  add one with `facefit users add NAME --role admin`",
                fg="yellow",
            )
        return
    password = secrets.token_urlsafe(12)
    user = users.add("admin", password, role="admin")
    services.audit.record(None, "user.add", target=user.name, detail="first start: role admin")
    click.secho(
        f"no users yet: made 'admin' with password {password}\n"
        "  log in and add investigators with `facefit users add NAME`; "
        "change this password with `facefit users passwd admin`",
        fg="yellow",
    )


@click.command("serve")
@DATA_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "-g",
    "--gallery",
    "galleries",
    multiple=True,
    help="NAME=FOLDER of a saved gallery (repeatable; default: the bundled demo gallery).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Pipeline TOML (plugins, options); the flags below override its settings.",
)
@_setting("--rounds", "rounds", "Most rounds per run.")
@_setting("--candidates", "candidates", "Faces per round.")
@_setting("--steps", "steps", "Sampler steps per round.")
@_setting("--seed", "seed")
@_setting("--workers", "workers", "Runs at the same time.")
@_setting("--queue", "queue_size", "Runs waiting.")
@_setting(
    "--choice-timeout",
    "choice_timeout",
    "Seconds a run waits for the investigator's choice before the loop decides.",
)
@_setting("--match-threshold", "match_threshold")
@_setting(
    "--login-failures",
    "login_failures",
    "Failed logins for one user name within --login-window that lock the name.",
)
@_setting(
    "--login-failures-per-address",
    "login_failures_per_address",
    "Failed logins from one client address within --login-window that lock it.",
)
@_setting("--login-window", "login_window", "Seconds over which failed logins are counted.")
@_setting(
    "--login-cooldown",
    "login_cooldown",
    "Seconds a locked user name or address is refused (HTTP 429).",
)
@click.option("--secure-cookies", is_flag=True, help="Behind HTTPS (a TLS proxy): Secure cookies.")
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies whose X-Forwarded-For is trusted (for the audit log's client address).",
)
def serve(
    data_dir: Path,
    host: str,
    port: int,
    galleries: tuple[str, ...],
    config_file: Path | None,
    rounds: int,
    candidates: int,
    steps: int,
    seed: int,
    workers: int,
    queue_size: int,
    choice_timeout: float,
    match_threshold: float,
    login_failures: int,
    login_failures_per_address: int,
    login_window: float,
    login_cooldown: float,
    secure_cookies: bool,
    forwarded_allow_ips: str,
) -> None:
    """Serve the web app and the HTTP API (/api/v1) for investigators."""
    require_serve_extra()
    import uvicorn

    from facefit.serve.app import create_app
    from facefit.serve.settings import ServeSettings

    settings = ServeSettings(
        data_dir=data_dir,
        galleries=_galleries(galleries),
        config_file=config_file,
        rounds=rounds,
        candidates=candidates,
        steps=steps,
        seed=seed,
        workers=workers,
        queue_size=queue_size,
        choice_timeout=choice_timeout,
        match_threshold=match_threshold,
        login_failures=login_failures,
        login_failures_per_address=login_failures_per_address,
        login_window=login_window,
        login_cooldown=login_cooldown,
        secure_cookies=secure_cookies,
    )
    if config_file is None:
        from facefit.pipeline.demo import require_default_model

        require_default_model()  # before binding: a server that cannot run is no use
    app = create_app(settings)
    _first_admin(app.state.services)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.secho(
            f"listening on {host}: put a TLS reverse proxy in front (docs/web.md)", fg="yellow"
        )
    click.echo(f"facefit serve: http://{host}:{port}/  (data in {settings.data_dir})")
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        timeout_keep_alive=KEEP_ALIVE,
        log_level="info",
    )
