"""The FastAPI application: pages, the JSON API, static files, start-up and shut-down.

:func:`create_app` opens the data folder and returns the app; when the app
starts, the run workers start and the galleries' pipelines load in a background
thread (pages answer at once; runs wait until the models are loaded). Uvicorn
serves it (``facefit serve``); tests drive it with FastAPI's TestClient or a
real browser.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from facefit.errors import FacefitError
from facefit.serve import api, pages, pages_admin, pages_runs
from facefit.serve.deps import SESSION_COOKIE, LoginRequired, api_user, client_ip, services
from facefit.serve.services import Services, open_services
from facefit.serve.settings import ServeSettings
from facefit.serve.web import HERE, render
from facefit.version import __version__

__all__ = ["create_app"]

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"
    ),
}


def _load_models(svc: Services) -> None:
    try:
        svc.galleries.load_all()
    except Exception as exc:  # shown on every page; runs fail with the same message
        log.exception("loading the pipelines failed")
        svc.load_error = f"{type(exc).__name__}: {exc}"
    finally:
        svc.ready.set()


def _api_docs(app: FastAPI) -> None:
    def docs_user(request: Request) -> Any:
        svc = services(request)
        session = svc.sessions.get(request.cookies.get(SESSION_COOKIE))
        user = session.user if session else api_user(request)
        svc.audit.record(user, "api.docs", target=request.url.path, ip=client_ip(request))
        return user

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> JSONResponse:
        docs_user(request)
        return JSONResponse(app.openapi())

    @app.get("/api/v1/docs", include_in_schema=False)
    def docs(request: Request) -> Response:
        svc = services(request)
        session = svc.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise LoginRequired()
        svc.audit.record(session.user, "api.docs", target=request.url.path, ip=client_ip(request))
        return get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title="facefit API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    def login_required(request: Request, exc: LoginRequired) -> Response:
        return pages.login_redirect(request)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return render(request, "error.html", status_code=exc.status_code, message=exc.detail)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.errors()}, status_code=422)
        fields = ", ".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors())
        return render(request, "error.html", status_code=422, message=f"Missing or bad: {fields}.")

    @app.exception_handler(FacefitError)
    def facefit_error(request: Request, exc: FacefitError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return render(request, "error.html", status_code=400, message=str(exc))

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def create_app(
    settings: ServeSettings | None = None, *, registry: Any = None, load_models: bool = True
) -> FastAPI:
    """The facefit web app for ``settings`` (``load_models=False``: runs never start)."""
    svc = open_services(settings or ServeSettings(), registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.runs.start(ready=svc.ready)
        if load_models:
            threading.Thread(target=_load_models, args=(svc,), daemon=True).start()
        yield
        svc.close()

    app = FastAPI(
        title="facefit",
        version=__version__,
        summary="Cases, evidence, runs of the IdentiFace loop with the investigator's choices",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = svc
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in (pages.router, pages_runs.router, pages_admin.router, api.router):
        app.include_router(router)
    _api_docs(app)
    _handlers(app)
    return app
