"""Per-request helpers: who is asking, may they, and the audit record that says so.

Every route except the login form, the token exchange and the static files goes
through :func:`page_session` (cookie) or :func:`api_user` (bearer token). Every
route that touches a case goes through :func:`open_case` or :func:`open_run`,
which write the audit record — ``ok`` or ``denied`` — before anything is shown.
A case the user may not see answers 404, as one that does not exist, so case
numbers reveal nothing.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from facefit.serve.auth import Session, User
from facefit.serve.cases import Case
from facefit.serve.services import Services

__all__ = [
    "SESSION_COOKIE",
    "ApiUser",
    "LoginRequired",
    "PageSession",
    "api_user",
    "check_csrf",
    "client_ip",
    "open_case",
    "open_case_to_share",
    "open_run",
    "page_session",
    "services",
]

SESSION_COOKIE = "facefit_session"


class LoginRequired(Exception):
    """A page was asked for without a live session (answered with a redirect to /login)."""


def services(request: Request) -> Services:
    return request.app.state.services


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def page_session(request: Request) -> Session:
    """The logged-in session of a page request, or :class:`LoginRequired`."""
    session = services(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired()
    request.state.session = session
    return session


def check_csrf(request: Request, session: Session, token: str | None) -> None:
    """Refuse a state-changing page request whose CSRF token is not the session's."""
    token = token or request.headers.get("x-csrf-token") or ""
    if not hmac.compare_digest(token.encode(), session.csrf.encode()):
        svc = services(request)
        svc.audit.record(
            session.user, "csrf", target=request.url.path, outcome="denied", ip=client_ip(request)
        )
        raise HTTPException(403, "the form is stale or came from another site; reload the page")


def api_user(request: Request) -> User:
    """The user of an API request (``Authorization: Bearer TOKEN``), or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    svc = services(request)
    user = svc.tokens.user(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        svc.audit.record(
            None, "api.auth", target=request.url.path, outcome="denied", ip=client_ip(request)
        )
        raise HTTPException(
            401,
            "send Authorization: Bearer TOKEN (POST /api/v1/tokens with a user name and password)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def open_case(request: Request, user: User, case_id: int, action: str, /, **detail: Any) -> Case:
    """The case when ``user`` may see it (audited either way), else 404."""
    svc = services(request)
    case = svc.cases.get(case_id)
    if case is None or not svc.cases.may_see(user, case):
        svc.audit.record(
            user,
            action,
            case_id=case_id,
            target=request.url.path,
            outcome="denied",
            ip=client_ip(request),
        )
        raise HTTPException(404, f"case {case_id}: not found, or not shared with you")
    svc.audit.record(
        user,
        action,
        case_id=case.id,
        target=request.url.path,
        detail=detail or None,
        ip=client_ip(request),
    )
    return case


def open_case_to_share(request: Request, user: User, case_id: int, to: str) -> tuple[Case, User]:
    """(case, user to share it with) when ``user`` may share it; one audit record either way.

    A case ``user`` may not see answers 404 (``denied``), as :func:`open_case`; one
    they see but do not own (and are not an admin) 403, and an unknown user name (or
    the owner) 400, both recorded as ``case.share`` ``denied``/``refused`` — never as a share that happened."""
    svc = services(request)
    case = svc.cases.get(case_id)
    other = svc.users.get((to or "").strip())
    if case is not None and svc.cases.may_see(user, case):
        refusal = None
        if case.owner_id != user.id and not user.is_admin:
            refusal = (403, "denied", "only the case's owner shares it")
        elif other is None:
            refusal = (400, "refused", f"no user {to!r}")
        elif other.id == case.owner_id:
            refusal = (400, "refused", f"{other.name} owns case {case.id} already")
        if refusal is not None:
            status, outcome, why = refusal
            svc.audit.record(
                user,
                "case.share",
                case_id=case.id,
                target=request.url.path,
                outcome=outcome,
                detail={"to": to, "why": why},
                ip=client_ip(request),
            )
            raise HTTPException(status, why)
    case = open_case(request, user, case_id, "case.share", to=to)
    return case, other


def open_run(request: Request, user: User, run_id: int, action: str, /, **detail: Any) -> tuple:
    """(case, run row) when ``user`` may see the run's case (audited either way), else 404."""
    svc = services(request)
    row = svc.db.one("SELECT * FROM runs WHERE id = ?", (run_id,))
    case = svc.cases.get(int(row["case_id"])) if row else None
    if row is None or case is None or not svc.cases.may_see(user, case):
        svc.audit.record(
            user,
            action,
            case_id=case.id if case else None,
            target=request.url.path,
            outcome="denied",
            ip=client_ip(request),
        )
        raise HTTPException(404, f"run {run_id}: not found, or its case is not shared with you")
    svc.audit.record(
        user,
        action,
        case_id=case.id,
        target=request.url.path,
        detail={"run": run_id, **detail},
        ip=client_ip(request),
    )
    return case, row


PageSession = Annotated[Session, Depends(page_session)]
"""A page route's parameter: the logged-in session (else a redirect to /login)."""
ApiUser = Annotated[User, Depends(api_user)]
"""An API route's parameter: the token's user (else 401)."""
