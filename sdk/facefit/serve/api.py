"""The JSON API under ``/api/v1``: the pages' operations for case systems and scripts.

Authenticate with ``Authorization: Bearer TOKEN``; get a token from
``POST /api/v1/tokens`` (user name and password) or from the account page. Every
call is audited like the page it mirrors. The OpenAPI description is served at
``/api/v1/openapi.json`` and browsable at ``/api/v1/docs`` (after logging in).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from facefit.errors import InputError
from facefit.serve.auth import User
from facefit.serve.deps import (
    ApiUser,
    client_ip,
    open_case,
    open_case_to_share,
    open_run,
    services,
)
from facefit.serve.pages_runs import parse_choice, run_images
from facefit.serve.runs import QueueFull, loads
from facefit.serve.storage import read_limited
from facefit.serve.throttle import Refusal
from facefit.serve.views import run_view, stored_detail
from facefit.serve.web import blob_response

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


class Login(BaseModel):
    name: str
    password: str
    label: str = Field("api", description="What the token is for (shown on the account page).")


class NewCase(BaseModel):
    title: str = Field(..., description="A name for the case.")
    reference: str = Field("", description="The case number in your case system.")


class Share(BaseModel):
    user: str = Field(..., description="User name to share the case with.")


class NewRun(BaseModel):
    gallery: str = Field(..., description="A gallery from GET /api/v1/galleries.")
    evidence: list[int] = Field(
        ..., description="Evidence ids of one witness: at most one sketch, frame and description."
    )
    rounds: int | None = Field(None, description="Rounds (default and maximum: the server's).")
    interactive: bool = Field(
        True, description="Wait for a choice after each round (POST …/choice)."
    )
    allow_no_face: list[str] = Field(
        [],
        description="Image kinds (sketch, lq) to use even without a verified face, flagged "
        "(the command line's --allow-no-face); otherwise such evidence is refused.",
    )


class ChoiceIn(BaseModel):
    round: int = Field(..., description="The round the choice answers (0-based).")
    pick: int | None = Field(None, description="Candidate whose identity steers the next round.")
    reject: list[int] = Field([], description="Candidates that look wrong.")
    accept: bool = Field(False, description="Stop after this round.")


class Unlock(BaseModel):
    name: str | None = Field(None, description="A user name locked by too many failed logins.")
    address: str | None = Field(None, description="A client address locked likewise.")


def _bad(exc: Exception, status: int = 400) -> HTTPException:
    return HTTPException(status, str(exc))


@router.post("/tokens", tags=["auth"])
def create_token(request: Request, body: Login) -> dict[str, Any]:
    """Exchange a user name and password for an API token (shown once; keep it secret).

    Too many failed logins for a user name or from an address are answered with 429
    and ``Retry-After`` until the cool-down ends, whatever the password."""
    svc = services(request)
    user = svc.login(body.name, body.password, client_ip(request), "login.api")
    if isinstance(user, Refusal):
        now = svc.throttle.clock()
        raise HTTPException(
            429, user.message(now), headers={"Retry-After": str(user.retry_after(now))}
        )
    if user is None:
        raise HTTPException(401, "wrong user name or password, or the account is disabled")
    token = svc.tokens.create(user, body.label)
    svc.audit.record(user, "login.api", detail={"label": body.label}, ip=client_ip(request))
    return {"token": token, "user": user.name, "role": user.role}


def _bearer(request: Request) -> str:
    return request.headers.get("authorization", "").partition(" ")[2].strip()


@router.get("/tokens", tags=["auth"])
def list_tokens(request: Request, user: ApiUser) -> dict[str, Any]:
    """Your API tokens (never their secrets); ``current`` marks the one this request used."""
    svc = services(request)
    svc.audit.record(user, "account.view", ip=client_ip(request))
    return {"tokens": svc.tokens.list(user, current=_bearer(request))}


@router.delete("/tokens/{token_id}", tags=["auth"])
def revoke_token(request: Request, token_id: int, user: ApiUser) -> dict[str, Any]:
    """Revoke one of your tokens (the current one too: the API's log-out); it stops at once."""
    revoked = services(request).revoke_token(user, token_id, client_ip(request))
    if revoked is None:
        raise HTTPException(404, f"no token {token_id} of yours")
    return revoked


@router.get("/me", tags=["auth"])
def me(user: ApiUser) -> dict[str, Any]:
    """Who the token belongs to."""
    return {"name": user.name, "role": user.role}


@router.get("/galleries", tags=["runs"])
def galleries(request: Request, user: ApiUser) -> dict[str, Any]:
    """The galleries runs may search, and the loop's settings."""
    svc = services(request)
    s = svc.settings
    return {
        "galleries": svc.galleries.names,
        "ready": svc.ready.is_set(),
        "settings": {"rounds": s.rounds, "candidates": s.candidates, "steps": s.steps},
    }


@router.get("/cases", tags=["cases"])
def list_cases(request: Request, user: ApiUser, q: str = "") -> dict[str, Any]:
    """The cases you may see (``q`` searches titles and references)."""
    svc = services(request)
    q = q.strip()[:100]
    svc.audit.record(
        user,
        "case.search" if q else "case.list",
        detail={"q": q} if q else None,
        ip=client_ip(request),
    )
    return {"cases": [c.to_dict() for c in svc.cases.visible(user, q or None)]}


@router.post("/cases", status_code=201, tags=["cases"])
def create_case(request: Request, body: NewCase, user: ApiUser) -> dict[str, Any]:
    """Open a case; you own it."""
    svc = services(request)
    try:
        case = svc.cases.create(user, body.title, body.reference)
    except InputError as exc:
        raise _bad(exc) from None
    svc.audit.record(user, "case.create", case_id=case.id, ip=client_ip(request))
    return case.to_dict()


@router.get("/cases/{case_id}", tags=["cases"])
def get_case(request: Request, case_id: int, user: ApiUser) -> dict[str, Any]:
    """A case with its evidence and runs."""
    svc = services(request)
    case = open_case(request, user, case_id, "case.view")
    runs = svc.db.all("SELECT * FROM runs WHERE case_id = ? ORDER BY id", (case.id,))
    return {
        **case.to_dict(),
        "evidence": [e.to_dict() for e in svc.case_evidence(case)],
        "runs": [run_view(svc, r, rounds=False) for r in runs],
    }


@router.post("/cases/{case_id}/shares", tags=["cases"])
def share(request: Request, case_id: int, body: Share, user: ApiUser) -> dict:
    """Share a case you own with another user."""
    svc = services(request)
    case, other = open_case_to_share(request, user, case_id, body.user)
    try:
        svc.cases.share(case, other)
    except InputError as exc:
        raise _bad(exc) from None
    return svc.cases.get(case.id).to_dict()


@router.post("/cases/{case_id}/evidence", status_code=201, tags=["cases"])
def add_evidence(
    request: Request,
    case_id: int,
    witness: Annotated[str, Form(description="Who gave this evidence.")],
    kind: Annotated[str, Form(description="sketch, lq (a low-quality frame) or text.")],
    user: ApiUser,
    text: Annotated[str, Form(description="The description, when kind is text.")] = "",
    file: Annotated[
        UploadFile | None, File(description="The image, when kind is sketch or lq.")
    ] = None,
) -> dict[str, Any]:
    """Add evidence (multipart form). Images are checked as the CLI checks them.

    An image in which no usable face is found is stored but flagged: its
    ``face_check`` says why and what to do (``null``: not checked yet, the models
    are loading), and a run on it is refused unless the run's ``allow_no_face``
    names its kind."""
    svc = services(request)
    case = open_case(request, user, case_id, "evidence.upload", kind=kind)
    try:
        if kind == "text":
            item = svc.cases.add_text(case, user, witness, text)
        else:
            if file is None:
                raise InputError(f"{kind}: send the image as the 'file' field")
            data = read_limited(file.file, svc.settings.max_upload_bytes, file.filename or "file")
            item = svc.add_image(case, user, witness, kind, data, file.filename or "upload")
    except InputError as exc:
        svc.audit.record(
            user,
            "evidence.refused",
            case_id=case.id,
            outcome="refused",
            detail=str(exc)[:300],
            ip=client_ip(request),
        )
        too_big = "upload limit" in str(exc)
        raise _bad(exc, 413 if too_big else 400) from None
    svc.audit.record(
        user,
        "evidence.stored",
        case_id=case.id,
        target=item.sha256,
        detail=stored_detail(item),
        ip=client_ip(request),
    )
    return item.to_dict()


@router.get("/cases/{case_id}/evidence/{item_id}/file", tags=["cases"])
def evidence_file(request: Request, case_id: int, item_id: int, user: ApiUser) -> Response:
    """The evidence file as uploaded (its sha256 is in the evidence listing)."""
    svc = services(request)
    case = open_case(request, user, case_id, "evidence.view", evidence=item_id)
    item = svc.cases.evidence_item(item_id)
    if item is None or item.case_id != case.id:
        raise HTTPException(404, f"no evidence {item_id} in case {case_id}")
    return blob_response(svc.blobs.read(item.sha256), item.media_type)


@router.post("/cases/{case_id}/runs", status_code=202, tags=["runs"])
def start_run(request: Request, case_id: int, body: NewRun, user: ApiUser) -> dict:
    """Queue a run; poll ``GET /api/v1/runs/{id}`` for its progress."""
    svc = services(request)
    case = open_case(request, user, case_id, "run.start")
    items = [item for i in body.evidence if (item := svc.cases.evidence_item(i)) is not None]
    if len(items) != len(body.evidence):
        raise HTTPException(400, f"unknown evidence id in {body.evidence}")
    try:
        run_id = svc.start_run(
            case,
            user,
            body.gallery,
            items,
            rounds=body.rounds,
            interactive=body.interactive,
            allow_no_face=body.allow_no_face,
        )
    except QueueFull as exc:
        raise _bad(exc, 503) from None
    except InputError as exc:
        raise _bad(exc) from None
    svc.audit.record(user, "run.queued", case_id=case.id, target=str(run_id), ip=client_ip(request))
    row = svc.db.one("SELECT * FROM runs WHERE id = ?", (run_id,))
    return run_view(svc, row, rounds=False)


@router.get("/runs/{run_id}", tags=["runs"])
def get_run(request: Request, run_id: int, user: ApiUser) -> dict[str, Any]:
    """A run: status, live progress, the round awaiting a choice, rounds, ranked identities."""
    _, row = open_run(request, user, run_id, "run.view")
    return run_view(services(request), row)


@router.post("/runs/{run_id}/choice", tags=["runs"])
def choose(request: Request, run_id: int, body: ChoiceIn, user: ApiUser) -> dict:
    """Answer the round the run waits on: pick, reject, accept (or none: the loop decides)."""
    svc = services(request)
    _, row = open_run(request, user, run_id, "run.choice", **body.model_dump())
    try:
        svc.runs.choose(run_id, body.round, parse_choice(body.pick, body.reject, body.accept))
    except InputError as exc:
        raise HTTPException(409, str(exc)) from None
    return run_view(svc, row, rounds=False)


@router.post("/runs/{run_id}/cancel", tags=["runs"])
def cancel(request: Request, run_id: int, user: ApiUser) -> dict[str, Any]:
    """Stop a run; the rounds it completed are kept."""
    svc = services(request)
    _, row = open_run(request, user, run_id, "run.cancel")
    return {
        "cancelling": svc.runs.cancel(run_id),
        "status": run_view(svc, row, rounds=False)["status"],
    }


@router.get("/runs/{run_id}/images/{sha256}", tags=["runs"])
def run_image(request: Request, run_id: int, sha256: str, user: ApiUser) -> Response:
    """A candidate image or gallery photo of the run (PNG), by the checksum the run lists."""
    svc = services(request)
    _, row = open_run(request, user, run_id, "run.image", image=sha256[:64])
    if sha256 not in run_images(svc, row):
        raise HTTPException(404, f"no image {sha256} in run {run_id}")
    return blob_response(svc.blobs.read(sha256), "image/png")


@router.get("/runs/{run_id}/result.json", tags=["runs"])
def result_json(request: Request, run_id: int, user: ApiUser) -> Any:
    """``result.json`` as ``facefit generate`` writes it."""
    return _export(request, run_id, user, "result")


@router.get("/runs/{run_id}/provenance.json", tags=["runs"])
def provenance_json(request: Request, run_id: int, user: ApiUser) -> Any:
    """``provenance.json``: hashes, model versions, config and seeds to reproduce the run."""
    return _export(request, run_id, user, "provenance")


def _export(request: Request, run_id: int, user: User, name: str) -> Any:
    _, row = open_run(request, user, run_id, "run.export", file=f"{name}.json")
    data = loads(row[name])
    if data is None:
        raise HTTPException(404, f"run {run_id} has no {name}.json (status {row['status']})")
    return data


def _admins_only(request: Request, user: User, action: str) -> None:
    if not user.is_admin:
        services(request).audit.record(
            user, action, target=request.url.path, outcome="denied", ip=client_ip(request)
        )
        raise HTTPException(403, "admins only")


@router.get("/users", tags=["admin"])
def list_users(request: Request, user: ApiUser) -> dict[str, Any]:
    """The users, and the user names and addresses the login throttle locks now (admins only)."""
    _admins_only(request, user, "users.view")
    svc = services(request)
    svc.audit.record(user, "users.view", ip=client_ip(request))
    return {
        "users": [
            {"name": u.name, "role": u.role, "disabled": u.disabled} for u in svc.users.list()
        ],
        "locks": [lock.to_dict() for lock in svc.throttle.locks()],
    }


@router.post("/unlock", tags=["admin"])
def unlock(request: Request, body: Unlock, user: ApiUser) -> dict[str, Any]:
    """Lift the login throttle's lock on a user name or an address at once (admins only).

    Its recorded failed logins are forgotten; ``attempts`` says how many (0: it was
    not locked). Give ``name`` or ``address``, not both."""
    _admins_only(request, user, "login.unlock")
    if (body.name is None) == (body.address is None):
        raise HTTPException(400, "give a user name or an address, not both")
    kind, value = ("name", body.name) if body.name is not None else ("address", body.address)
    try:
        forgotten = services(request).unlock(user, kind, value, client_ip(request))
    except InputError as exc:
        raise _bad(exc) from None
    return {"kind": kind, "value": value.strip(), "attempts": forgotten}


@router.get("/audit", tags=["admin"])
def audit(
    request: Request,
    user: ApiUser,
    case_id: int | None = None,
    user_name: str | None = None,
    action: str | None = None,
    before: int | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """The audit log, newest first (admins only)."""
    _admins_only(request, user, "audit.view")
    svc = services(request)
    filters = {"case_id": case_id, "user_name": user_name, "action": action, "before": before}
    svc.audit.record(
        user,
        "audit.view",
        detail=json.dumps({k: v for k, v in filters.items() if v is not None}),
        ip=client_ip(request),
    )
    check = svc.audit.verify()
    return {
        "chain": {
            "intact": check.intact,
            "records": check.records,
            "first_broken": check.first_broken,
        },
        "entries": svc.audit.entries(limit=min(max(limit, 1), 1000), **filters),
    }
