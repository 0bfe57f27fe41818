"""The account page (API tokens) and the admins' pages: the audit log and the users."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from facefit.errors import InputError
from facefit.serve.auth import Session
from facefit.serve.deps import PageSession, check_csrf, client_ip, services
from facefit.serve.web import redirect, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _admin(request: Request, session: Session, action: str) -> None:
    if not session.user.is_admin:
        services(request).audit.record(
            session.user, action, target=request.url.path, outcome="denied", ip=client_ip(request)
        )
        raise HTTPException(403, "admins only")


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, session: PageSession, revoked: str = "") -> Response:
    svc = services(request)
    svc.audit.record(session.user, "account.view", ip=client_ip(request))
    return render(
        request, "account.html", tokens=svc.tokens.list(session.user), revoked=revoked[:100]
    )


@router.post("/account/tokens", response_class=HTMLResponse)
def new_token(
    request: Request,
    session: PageSession,
    label: Annotated[str, Form()] = "api",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    svc = services(request)
    token = svc.tokens.create(session.user, label.strip() or "api")
    svc.audit.record(session.user, "token.create", detail={"label": label}, ip=client_ip(request))
    return render(request, "account.html", token=token, tokens=svc.tokens.list(session.user))


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(
    request: Request, session: PageSession, token_id: int, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Revoke one of your API tokens (audited); it stops working at once."""
    check_csrf(request, session, csrf)
    revoked = services(request).revoke_token(session.user, token_id, client_ip(request))
    if revoked is None:
        raise HTTPException(404, f"no token {token_id} of yours")
    return redirect(f"/account?revoked={quote(revoked['label'][:100])}")


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: PageSession,
    user_name: str = "",
    case_id: str = "",
    action: str = "",
    before: str = "",
) -> Response:
    _admin(request, session, "audit.view")
    svc = services(request)
    filters = {
        "user_name": user_name.strip() or None,
        "case_id": int(case_id) if case_id.strip().isdigit() else None,
        "action": action.strip() or None,
        "before": int(before) if before.strip().isdigit() else None,
    }
    svc.audit.record(
        session.user,
        "audit.view",
        detail={k: v for k, v in filters.items() if v is not None} or None,
        ip=client_ip(request),
    )
    entries = svc.audit.entries(limit=200, **filters)
    return render(
        request,
        "audit.html",
        entries=entries,
        chain=svc.audit.verify(),
        filters={"user_name": user_name, "case_id": case_id, "action": action},
        older=entries[-1]["id"] if len(entries) == 200 else None,
    )


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, session: PageSession, unlocked: str = "") -> Response:
    _admin(request, session, "users.view")
    svc = services(request)
    svc.audit.record(session.user, "users.view", ip=client_ip(request))
    return render(
        request,
        "users.html",
        users=svc.users.list(),
        locks=svc.throttle.locks(),
        unlocked=unlocked[:64],
    )


@router.post("/admin/unlock")
def unlock(
    request: Request,
    session: PageSession,
    kind: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Lift the login throttle's lock on a user name or an address (admins; audited)."""
    check_csrf(request, session, csrf)
    _admin(request, session, "login.unlock")
    try:
        services(request).unlock(session.user, kind, value, client_ip(request))
    except InputError as exc:
        raise HTTPException(400, str(exc)) from None
    return redirect(f"/admin/users?unlocked={quote(value.strip()[:64])}")
