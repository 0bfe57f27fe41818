"""``facefit serve``: the investigator's web app and its HTTP API.

Cases with evidence per witness (content-addressed, never modified), runs of the
IdentiFace loop in worker threads with live progress and the investigator's
choices between rounds, printable case reports, users with hashed passwords,
per-case access checks and an append-only audit log of every access. See
``docs/web.md``.

    >>> from facefit.serve import ServeSettings, create_app
    >>> app = create_app(ServeSettings(data_dir="serve-data"))   # an ASGI app for uvicorn

Needs the ``serve`` extra (FastAPI, uvicorn, argon2-cffi, python-multipart).
"""

from __future__ import annotations

from facefit.serve.settings import DEMO_GALLERY, ServeSettings

__all__ = ["DEMO_GALLERY", "ServeSettings", "create_app"]


def create_app(*args, **kwargs):
    """See :func:`facefit.serve.app.create_app` (imported here lazily: FastAPI is optional)."""
    from facefit.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)
