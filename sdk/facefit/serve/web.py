"""Rendering pages: templates, the context every page gets, redirects, image responses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from facefit.serve.cases import KINDS
from facefit.version import __version__

__all__ = ["HERE", "blob_response", "is_htmx", "redirect", "render", "templates"]

HERE = Path(__file__).resolve().parent


def _templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(HERE / "templates"))
    t.env.globals.update(version=__version__, kinds=KINDS)
    t.env.filters["short"] = lambda sha: (sha or "")[:12]
    t.env.filters["when"] = lambda iso: (iso or "")[:19].replace("T", " ")
    t.env.filters["steer"] = steering_words
    return t


def steering_words(reference: str | None, names: bool = True) -> str:
    """The loop's "candidate 0/1 …" (0-based round/index) as the page counts: round 1, face 2.

    ``names=False`` hides which gallery identity was blended in: the run page is
    what the witness sees while choosing, and mugshot names must not steer them.
    """
    if not reference:
        return "the evidence only"
    text = re.sub(
        r"\b(\d+)/(\d+)\b",
        lambda m: f"round {int(m[1]) + 1} face {int(m[2]) + 1}",
        reference,
    )
    if not names:
        text = re.sub(r"gallery face of \S+", "its closest gallery face", text)
    return text


templates = _templates()


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page with the session's user and CSRF token (for forms and htmx) in its context."""
    session = getattr(request.state, "session", None)
    svc = request.app.state.services
    context.update(
        user=session.user if session else None,
        csrf=session.csrf if session else "",
        models_ready=svc.ready.is_set(),
        load_error=svc.load_error,
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def redirect(url: str) -> RedirectResponse:
    """See-other: a form post lands on a page that a reload does not post again."""
    return RedirectResponse(url, status_code=303)


def blob_response(data: bytes, media_type: str, filename: str | None = None) -> Response:
    """A stored file; content-addressed, so the browser may keep it for good."""
    headers = {
        "Cache-Control": "private, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    if filename:
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return Response(data, media_type=media_type, headers=headers)
