"""What a ``facefit serve`` instance is configured with (command-line flags end up here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from facefit.errors import InputError
from facefit.settings import at_least, check_fields, more_than

__all__ = ["DEFAULT_DATA_DIR", "DEMO_GALLERY", "ServeSettings"]

DEMO_GALLERY = "demo"
"""Gallery name of the bundled 24-face FS2K demo gallery (offered when none is configured)."""


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "facefit" / "serve"


DEFAULT_DATA_DIR = _default_data_dir()


_SERVE_RULES = {
    "rounds": at_least(1),
    "candidates": at_least(1),
    "steps": at_least(1),
    "workers": at_least(1),
    "queue_size": at_least(1),
    "choice_timeout": more_than(0),
    "login_failures": at_least(1),
    "login_failures_per_address": at_least(1),
    "login_window": more_than(0),
    "login_cooldown": more_than(0),
}


@dataclass(frozen=True)
class ServeSettings:
    """One server's configuration.

    ``data_dir`` holds ``facefit.sqlite3`` (users, cases, runs, audit) and
    ``blobs/`` (evidence, candidates and gallery photos, content-addressed).
    ``galleries`` maps a gallery name to a saved gallery folder, or to
    :data:`DEMO_GALLERY` for the bundled one. ``rounds``, ``candidates`` and
    ``steps`` are the loop's settings for every run (a run may ask for fewer rounds).
    """

    data_dir: Path = DEFAULT_DATA_DIR
    galleries: dict[str, str] = field(default_factory=lambda: {DEMO_GALLERY: DEMO_GALLERY})
    config_file: Path | None = None
    rounds: int = 3
    candidates: int = 4
    steps: int = 20
    seed: int = 0
    workers: int = 2
    queue_size: int = 8
    choice_timeout: float = 600.0
    """Seconds a run waits for the investigator's choice before the loop decides itself."""
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    match_threshold: float = 0.363
    """Fused cosine below which the top identity is shown as "no likely match" (SFace's
    published same-person threshold; a calibrated probability, where the pipeline
    gives one, is compared with 0.5 instead)."""
    session_hours: float = 12.0
    secure_cookies: bool = False
    """Mark cookies Secure: set when the server is reached through HTTPS (a TLS proxy)."""
    login_failures: int = 5
    """Failed logins for one user name within ``login_window`` after which attempts for
    that name are refused (HTTP 429) for ``login_cooldown`` seconds, right password or not."""
    login_failures_per_address: int = 20
    """The same limit for one client address (across user names)."""
    login_window: float = 900.0
    """Seconds over which failed logins are counted."""
    login_cooldown: float = 900.0
    """Seconds a user name or address is refused once it reached its limit."""
    warm_up: bool = True
    """Run the loop once at start-up, so the first investigator does not wait for lazy loading."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        check_fields(self, _SERVE_RULES, error=InputError, where="serve: ", flags=True)
        if not self.galleries:
            raise InputError("serve: no gallery configured; pass --gallery NAME=PATH")

    @property
    def database(self) -> Path:
        return self.data_dir / "facefit.sqlite3"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"
