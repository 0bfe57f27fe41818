"""The investigator's pages: logging in, the case list, a case with its evidence and runs.

Server-rendered; forms post normally and htmx only makes some of them smoother, so
every page works without JavaScript too. Each form carries the session's CSRF
token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from facefit.errors import InputError
from facefit.serve.auth import Session
from facefit.serve.deps import (
    SESSION_COOKIE,
    PageSession,
    check_csrf,
    client_ip,
    open_case,
    open_case_to_share,
    services,
)
from facefit.serve.facecheck import ALLOW_LABEL
from facefit.serve.runs import QueueFull
from facefit.serve.storage import read_limited
from facefit.serve.throttle import Refusal
from facefit.serve.views import run_view, stored_detail
from facefit.serve.web import blob_response, redirect, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
LOGIN_CSRF = "facefit_login_csrf"


def _safe_next(target: str | None) -> str:
    """Only redirect to a path on this server (never to another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", next=_safe_next(next), login_csrf=token)
    response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict")
    return response


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    svc = services(request)
    expected = request.cookies.get(LOGIN_CSRF, "")
    if expected and hmac.compare_digest(csrf.encode(), expected.encode()):
        user = svc.login(name, password, client_ip(request), "login")
    else:  # no password is checked, so the attempt does not count towards the throttle
        svc.audit.record(
            None,
            "login",
            target=name[:64],
            outcome="denied",
            detail="stale login form",
            ip=client_ip(request),
        )
        user = None
    if user is None or isinstance(user, Refusal):
        headers, status = {}, 401
        error = "Wrong user name or password, or the account is disabled."
        if isinstance(user, Refusal):
            now = svc.throttle.clock()
            status, error = 429, user.message(now)
            headers["Retry-After"] = str(user.retry_after(now))
        token = secrets.token_urlsafe(24)
        response = render(
            request,
            "login.html",
            status_code=status,
            next=_safe_next(next),
            login_csrf=token,
            error=error,
        )
        response.headers.update(headers)
        response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict")
        return response
    cookie, _ = svc.sessions.create(user)
    svc.audit.record(user, "login", ip=client_ip(request))
    response = redirect(_safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=svc.settings.secure_cookies,
        max_age=int(svc.settings.session_hours * 3600),
    )
    response.delete_cookie(LOGIN_CSRF)
    return response


@router.post("/logout")
def logout(request: Request, session: PageSession, csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, session, csrf)
    svc = services(request)
    svc.sessions.delete(request.cookies.get(SESSION_COOKIE))
    svc.audit.record(session.user, "logout", ip=client_ip(request))
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def case_list(request: Request, session: PageSession, q: str = "") -> Response:
    svc = services(request)
    q = q.strip()[:100]
    svc.audit.record(
        session.user,
        "case.search" if q else "case.list",
        detail={"q": q} if q else None,
        ip=client_ip(request),
    )
    return render(request, "cases.html", cases=svc.cases.visible(session.user, q or None), q=q)


@router.post("/cases")
def create_case(
    request: Request,
    session: PageSession,
    title: Annotated[str, Form()] = "",
    reference: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    svc = services(request)
    try:
        case = svc.cases.create(session.user, title, reference)
    except InputError as exc:
        return render(
            request,
            "cases.html",
            status_code=400,
            cases=svc.cases.visible(session.user),
            q="",
            error=str(exc),
        )
    svc.audit.record(session.user, "case.create", case_id=case.id, ip=client_ip(request))
    return redirect(f"/cases/{case.id}")


def _case_page(request: Request, session: Session, case_id: int, status: int = 200, **extra):
    svc = services(request)
    case = open_case(request, session.user, case_id, "case.view")
    runs = [
        run_view(svc, row, rounds=False)
        for row in svc.db.all("SELECT * FROM runs WHERE case_id = ? ORDER BY id DESC", (case.id,))
    ]
    return render(
        request,
        "case.html",
        status_code=status,
        case=case,
        evidence=svc.case_evidence(case),
        allow_label=ALLOW_LABEL,
        witnesses=svc.cases.witnesses(case),
        runs=runs,
        galleries=svc.galleries.names,
        max_rounds=svc.settings.rounds,
        may_share=case.owner_id == session.user.id or session.user.is_admin,
        **extra,
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: int, session: PageSession) -> Response:
    return _case_page(request, session, case_id)


@router.post("/cases/{case_id}/evidence")
def add_evidence(
    request: Request,
    case_id: int,
    kind: Annotated[str, Form()],
    session: PageSession,
    witness: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    svc = services(request)
    case = open_case(request, session.user, case_id, "evidence.upload", kind=kind)
    try:
        if kind == "text":
            item = svc.cases.add_text(case, session.user, witness, text)
        else:
            if file is None or not file.filename:
                raise InputError(f"{kind}: choose an image file to upload")
            data = read_limited(file.file, svc.settings.max_upload_bytes, file.filename)
            item = svc.add_image(case, session.user, witness, kind, data, file.filename)
    except InputError as exc:
        svc.audit.record(
            session.user,
            "evidence.refused",
            case_id=case.id,
            outcome="refused",
            detail=str(exc)[:300],
            ip=client_ip(request),
        )
        return _case_page(request, session, case_id, 400, error=str(exc))
    svc.audit.record(
        session.user,
        "evidence.stored",
        case_id=case.id,
        target=item.sha256,
        detail=stored_detail(item),
        ip=client_ip(request),
    )
    return redirect(f"/cases/{case.id}#evidence")


@router.get("/cases/{case_id}/evidence/{item_id}")
def evidence_file(request: Request, case_id: int, item_id: int, session: PageSession) -> Response:
    svc = services(request)
    case = open_case(request, session.user, case_id, "evidence.view", evidence=item_id)
    item = svc.cases.evidence_item(item_id)
    if item is None or item.case_id != case.id:
        return Response("no such evidence in this case", status_code=404)
    return blob_response(svc.blobs.read(item.sha256), item.media_type)


@router.post("/cases/{case_id}/share")
def share_case(
    request: Request,
    case_id: int,
    session: PageSession,
    user_name: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    svc = services(request)
    try:
        case, other = open_case_to_share(request, session.user, case_id, user_name)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        error = str(exc.detail)
        error = f"{error[:1].upper()}{error[1:]}."
        return _case_page(request, session, case_id, exc.status_code, error=error)
    try:
        svc.cases.share(case, other)
    except InputError as exc:
        return _case_page(request, session, case_id, 400, error=str(exc))
    return redirect(f"/cases/{case.id}")


@router.post("/cases/{case_id}/runs")
def start_run(
    request: Request,
    case_id: int,
    session: PageSession,
    gallery: Annotated[str, Form()] = "",
    sketch: Annotated[str, Form()] = "",
    lq: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    rounds: Annotated[str, Form()] = "",
    interactive: Annotated[str | None, Form()] = None,
    allow_no_face: Annotated[list[str] | None, Form()] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    svc = services(request)
    case = open_case(request, session.user, case_id, "run.start")
    ids = [int(v) for v in (sketch, lq, text) if v.strip().isdigit()]
    items = [item for i in ids if (item := svc.cases.evidence_item(i)) is not None]
    try:
        run_id = svc.start_run(
            case,
            session.user,
            gallery,
            items,
            rounds=int(rounds) if rounds.strip().isdigit() else None,
            interactive=interactive is not None,
            allow_no_face=allow_no_face or (),
        )
    except (InputError, QueueFull) as exc:
        status = 503 if isinstance(exc, QueueFull) else 400
        return _case_page(request, session, case_id, status, error=str(exc))
    svc.audit.record(
        session.user,
        "run.queued",
        case_id=case.id,
        target=str(run_id),
        detail={"evidence": ids},
        ip=client_ip(request),
    )
    return redirect(f"/runs/{run_id}")


def login_redirect(request: Request) -> Response:
    """Where :class:`~facefit.serve.deps.LoginRequired` sends a page request."""
    target = "/login?next=" + quote(request.url.path)
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return redirect(target)
