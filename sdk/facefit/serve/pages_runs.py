"""Run pages: live progress, the round's candidates and the Choice form, results, the report.

The run page holds one fragment (``_live.html``) that htmx reloads every second
while the run is queued or drawing candidates. When a round waits for the
investigator the fragment stops polling (so a half-made choice is not wiped) and
shows the choice form; posting it hands a :class:`~facefit.pipeline.Choice` to
the waiting worker and returns the polling fragment again.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from facefit.errors import InputError
from facefit.serve.db import now
from facefit.serve.deps import PageSession, check_csrf, open_run, services
from facefit.serve.runs import loads
from facefit.serve.views import run_view
from facefit.serve.web import blob_response, is_htmx, redirect, render

__all__ = ["parse_choice", "router", "run_images"]

router = APIRouter(include_in_schema=False)


def run_images(svc, row) -> set[str]:
    """The blobs a run may serve: its candidates and its gallery photos."""
    shas = set(loads(row["photos"], {}).values())
    for r in svc.db.all("SELECT trace FROM rounds WHERE run_id = ?", (row["id"],)):
        shas.update(c["image"] for c in json.loads(r["trace"])["candidates"])
    return shas


def _run_context(request: Request, case, row) -> dict:
    svc = services(request)
    view = run_view(svc, row)
    evidence = [svc.cases.evidence_item(i) for i in view["evidence"]]
    return {"case": case, "run": view, "evidence": [e for e in evidence if e is not None]}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: int, session: PageSession) -> Response:
    case, row = open_run(request, session.user, run_id, "run.view")
    return render(request, "run.html", **_run_context(request, case, row))


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
def run_live(request: Request, run_id: int, session: PageSession) -> Response:
    case, row = open_run(request, session.user, run_id, "run.progress")
    return render(request, "_live.html", **_run_context(request, case, row))


def parse_choice(pick: str | int | None, reject: list, accept: bool):
    """A :class:`~facefit.pipeline.Choice` from form or JSON fields."""
    from facefit.pipeline import Choice

    try:
        pick_index = int(pick) if pick not in (None, "", "none") else None
        rejected = tuple(int(r) for r in reject if str(r) != "")
    except (TypeError, ValueError):
        raise InputError("choice: pick and reject are candidate numbers") from None
    return Choice(pick=pick_index, reject=rejected, accept=bool(accept))


@router.post("/runs/{run_id}/choice")
def choose(
    request: Request,
    run_id: int,
    round: Annotated[int, Form()],
    session: PageSession,
    pick: Annotated[str, Form()] = "",
    reject: Annotated[list[str] | None, Form()] = None,
    action: Annotated[str, Form()] = "next",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    svc = services(request)
    case, row = open_run(
        request,
        session.user,
        run_id,
        "run.choice",
        round=round,
        pick=pick,
        reject=reject,
        action=action,
    )
    try:
        svc.runs.choose(run_id, round, parse_choice(pick, reject or [], action == "accept"))
        error = None
    except InputError as exc:
        error = str(exc)
    context = _run_context(request, case, row)
    if is_htmx(request):
        return render(
            request, "_live.html", status_code=400 if error else 200, error=error, **context
        )
    if error:
        return render(request, "run.html", status_code=400, error=error, **context)
    return redirect(f"/runs/{run_id}")


@router.post("/runs/{run_id}/cancel")
def cancel(
    request: Request, run_id: int, session: PageSession, csrf: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(request, session, csrf)
    svc = services(request)
    case, row = open_run(request, session.user, run_id, "run.cancel")
    svc.runs.cancel(run_id)
    if is_htmx(request):
        return render(request, "_live.html", **_run_context(request, case, row))
    return redirect(f"/runs/{run_id}")


@router.get("/runs/{run_id}/images/{sha256}")
def run_image(request: Request, run_id: int, sha256: str, session: PageSession) -> Response:
    svc = services(request)
    _, row = open_run(request, session.user, run_id, "run.image", image=sha256[:64])
    if sha256 not in run_images(svc, row):
        return Response("no such image in this run", status_code=404)
    return blob_response(svc.blobs.read(sha256), "image/png")


@router.get("/runs/{run_id}/report", response_class=HTMLResponse)
def report(request: Request, run_id: int, session: PageSession) -> Response:
    case, row = open_run(request, session.user, run_id, "run.report")
    context = _run_context(request, case, row)
    context["provenance"] = loads(row["provenance"])
    context["now"] = now()
    return render(request, "report.html", **context)


@router.get("/runs/{run_id}/{name}.json")
def export(request: Request, run_id: int, name: str, session: PageSession) -> Response:
    if name not in ("result", "provenance"):
        return Response("only result.json and provenance.json are exported", status_code=404)
    _, row = open_run(request, session.user, run_id, "run.export", file=f"{name}.json")
    if not row[name]:
        return Response(f"run {run_id} has no {name}.json (status {row['status']})", 404)
    return Response(
        json.dumps(json.loads(row[name]), indent=2) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="run{run_id}-{name}.json"'},
    )
