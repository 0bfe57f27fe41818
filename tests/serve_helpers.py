"""Helpers for the web app's tests: a server on the bundled demo model and gallery, users, uploads.

Runs use the shipped default generator and the 24-face demo gallery with tiny
settings (2 candidates, 2 steps), so a run takes seconds on a CPU.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).resolve().parents[1] / "sdk" / "facefit" / "demo_data"
SKETCH = DEMO / "probes" / "sketch_photo1_0724.png"
DESCRIPTION = "a smiling man with brown hair, brown eyes, red lips and tanned skin"  # probes.csv
PASSWORDS = {"admin": "admin-password-1", "alice": "alice-password-1", "bob": "bob-password-12"}
TINY = {"rounds": 2, "candidates": 2, "steps": 2}


def require_models() -> None:
    """Skip when the model files the pipeline needs are not installed (``facefit models install``)."""
    from facefit import weights
    from facefit.errors import WeightsNotFoundError

    pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
    try:
        for name in ("yunet", "sface", "minilm-weights"):
            weights.resolve(name)
    except WeightsNotFoundError as exc:
        pytest.skip(f"model files not installed ({exc}); run `facefit models install`")


def make_app(data_dir: Path, *, load_models: bool = True, **settings: Any) -> Any:
    """An app on ``data_dir`` with users admin (admin), alice and bob (investigators)."""
    from facefit.serve.app import create_app
    from facefit.serve.settings import ServeSettings

    app = create_app(ServeSettings(data_dir=data_dir, **settings), load_models=load_models)
    users = app.state.services.users
    for name, password in PASSWORDS.items():
        if users.get(name) is None:
            users.add(name, password, role="admin" if name == "admin" else "investigator")
    return app


def bearer(client: Any, name: str) -> dict[str, str]:
    """Headers with a fresh API token of ``name``."""
    response = client.post("/api/v1/tokens", json={"name": name, "password": PASSWORDS[name]})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def upload(client: Any, headers: dict, case_id: int, kind: str, **fields: Any) -> Any:
    """POST one evidence item; ``data=bytes`` for images, ``text=…`` for a description."""
    form = {"witness": fields.get("witness", "W1"), "kind": kind}
    files = None
    if kind == "text":
        form["text"] = fields.get("text", DESCRIPTION)
    else:
        files = {"file": (fields.get("name", "upload.png"), fields["data"], "image/png")}
    return client.post(f"/api/v1/cases/{case_id}/evidence", data=form, files=files, headers=headers)


def wait_for(
    client: Any, headers: dict, run_id: int, statuses: tuple[str, ...], timeout: float = 240.0
) -> dict[str, Any]:
    """Poll a run until its status is one of ``statuses``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        view = client.get(f"/api/v1/runs/{run_id}", headers=headers).json()
        if view["status"] in statuses:
            return view
        if view["status"] in ("failed", "interrupted") or time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} is {view['status']}, wanted {statuses}: {view}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
