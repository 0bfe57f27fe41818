"""Access without models: sharing a case from its page, API tokens listed and revoked, audited.

The app runs without models (``load_models=False``): none of this needs them.
"""

from __future__ import annotations

import re

import pytest

from tests.serve_helpers import PASSWORDS, bearer, make_app


@pytest.fixture
def app(tmp_path):
    pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
    return make_app(tmp_path / "serve", load_models=False)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


def _audit(app, action: str) -> list[dict]:
    rows = app.state.services.audit.entries(limit=1000, action=action)
    return [r for r in reversed(rows) if r["action"] == action]


def _login(app, name: str):
    from fastapi.testclient import TestClient

    browser = TestClient(app)
    form = browser.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)[1]
    page = browser.post("/login", data={"name": name, "password": PASSWORDS[name], "csrf": csrf})
    assert page.status_code == 200 and "Log out" in page.text
    return browser, re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def test_the_owner_shares_a_case_from_its_page_and_refusals_are_audited(app):
    alice, alice_csrf = _login(app, "alice")
    made = alice.post("/cases", data={"title": "Burglary, Mill Lane", "csrf": alice_csrf})
    case_path = made.url.path
    assert re.fullmatch(r"/cases/\d+", case_path)
    bob, bob_csrf = _login(app, "bob")
    assert bob.get(case_path).status_code == 404
    assert "Burglary" not in bob.get("/").text

    nobody = alice.post(f"{case_path}/share", data={"user_name": "nobody", "csrf": alice_csrf})
    assert nobody.status_code == 400 and "No user &#39;nobody&#39;" in nobody.text
    shared = alice.post(f"{case_path}/share", data={"user_name": "bob", "csrf": alice_csrf})
    assert shared.status_code == 200 and "shared with bob" in shared.text
    assert "Burglary" in bob.get("/").text and bob.get(case_path).status_code == 200
    # bob sees it but does not own it: he may not share it on
    onward = bob.post(f"{case_path}/share", data={"user_name": "admin", "csrf": bob_csrf})
    assert onward.status_code == 403 and "Only the case&#39;s owner shares it." in onward.text

    records = [(r["user_name"], r["outcome"]) for r in _audit(app, "case.share")]
    assert records == [("alice", "refused"), ("alice", "ok"), ("bob", "denied")]
    assert app.state.services.cases.get(int(case_path.rsplit("/", 1)[1])).shared_with == ("bob",)


def test_the_api_refuses_a_share_by_anyone_but_the_owner_without_recording_a_share(client, app):
    alice, bob = bearer(client, "alice"), bearer(client, "bob")
    case = client.post("/api/v1/cases", json={"title": "Arson"}, headers=alice).json()
    shares = f"/api/v1/cases/{case['id']}/shares"
    assert client.post(shares, json={"user": "bob"}, headers=bob).status_code == 404
    assert client.post(shares, json={"user": "alice"}, headers=alice).status_code == 400
    assert client.post(shares, json={"user": "bob"}, headers=alice).status_code == 200
    assert client.post(shares, json={"user": "admin"}, headers=bob).status_code == 403
    outcomes = [(r["user_name"], r["outcome"]) for r in _audit(app, "case.share")]
    assert outcomes == [("bob", "denied"), ("alice", "refused"), ("alice", "ok"), ("bob", "denied")]


def test_api_tokens_are_listed_and_revoked_by_their_owner_only(client, app):
    first, second = bearer(client, "alice"), bearer(client, "alice")
    listed = client.get("/api/v1/tokens", headers=second).json()["tokens"]
    assert [t["current"] for t in listed] == [True, False]  # newest first
    assert all(set(t) == {"id", "label", "created", "revoked", "current"} for t in listed)
    current, other = listed[0]["id"], listed[1]["id"]
    bob = bearer(client, "bob")
    assert client.delete(f"/api/v1/tokens/{other}", headers=bob).status_code == 404
    assert client.get("/api/v1/me", headers=first).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{other}", headers=second)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert client.get("/api/v1/me", headers=first).status_code == 401
    # the API's log-out: a token revokes itself
    assert client.delete(f"/api/v1/tokens/{current}", headers=second).status_code == 200
    assert client.get("/api/v1/me", headers=second).status_code == 401
    outcomes = [(r["user_name"], r["outcome"]) for r in _audit(app, "token.revoke")]
    assert outcomes == [("bob", "denied"), ("alice", "ok"), ("alice", "ok")]


def test_the_account_page_lists_tokens_and_revokes_one(client, app):
    token = bearer(client, "alice")
    assert client.get("/api/v1/me", headers=token).status_code == 200
    page, csrf = _login(app, "alice")
    account = page.get("/account").text
    [token_id] = re.findall(r'action="/account/tokens/(\d+)/revoke"', account)
    forged = page.post(f"/account/tokens/{token_id}/revoke", data={"csrf": "not-the-token"})
    assert forged.status_code == 403
    assert client.get("/api/v1/me", headers=token).status_code == 200
    done = page.post(f"/account/tokens/{token_id}/revoke", data={"csrf": csrf})
    assert done.status_code == 200 and 'id="revoked"' in done.text
    assert "/revoke" not in done.text  # nothing left to revoke
    assert client.get("/api/v1/me", headers=token).status_code == 401
    bob, bob_csrf = _login(app, "bob")
    assert (
        bob.post(f"/account/tokens/{token_id}/revoke", data={"csrf": bob_csrf}).status_code == 404
    )


def test_the_galleries_and_loop_settings_are_listed(client):
    listing = client.get("/api/v1/galleries", headers=bearer(client, "bob")).json()
    assert listing["galleries"] == ["demo"] and listing["ready"] is False  # no models here
    assert listing["settings"] == {"rounds": 3, "candidates": 4, "steps": 20}


# -- facefit serve itself -----------------------------------------------------------------


def test_facefit_serve_listens_on_loopback_unless_told_and_warns_then(tmp_path, monkeypatch):
    """`facefit serve` binds 127.0.0.1:8000 by default; another address prints a warning."""
    from types import SimpleNamespace

    from click.testing import CliRunner

    import facefit.cli.serve as serve_cli
    import facefit.serve.app as app_module
    from facefit.cli import main

    pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")
    import uvicorn

    runs = []
    fake_app = SimpleNamespace(state=SimpleNamespace(services=None))
    monkeypatch.setattr(app_module, "create_app", lambda settings: fake_app)
    monkeypatch.setattr(serve_cli, "_first_admin", lambda services: None)
    monkeypatch.setattr("facefit.pipeline.demo.require_default_model", lambda: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append(options))
    data = ["--data", str(tmp_path / "d")]
    quiet = CliRunner().invoke(main, ["serve", *data])
    assert quiet.exit_code == 0, quiet.output
    assert (runs[0]["host"], runs[0]["port"]) == ("127.0.0.1", 8000)
    assert runs[0]["timeout_keep_alive"] == serve_cli.KEEP_ALIVE >= 30
    assert "put a TLS reverse proxy in front" not in quiet.output
    wide = CliRunner().invoke(main, ["serve", *data, "--host", "0.0.0.0"])
    assert runs[1]["host"] == "0.0.0.0" and "put a TLS reverse proxy in front" in wide.output


def test_facefit_serve_starts_on_a_fresh_data_folder(tmp_path):
    """The README's way: `facefit serve` alone starts, makes an admin and serves the login."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.serve_helpers import free_port, require_models

    require_models()
    port = free_port()
    command = [sys.executable, "-m", "facefit", "serve", "--data", str(tmp_path / "d")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines, deadline = [], time.monotonic() + 180
        while not any("Uvicorn running on" in line for line in lines):
            line = server.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        output = "".join(lines)
        password = re.search(r"made 'admin' with password (\S+)", output)
        assert password, output
        assert f"http://127.0.0.1:{port}/" in output
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            assert client.get("/login").status_code == 200
            token = client.post("/api/v1/tokens", json={"name": "admin", "password": password[1]})
            assert token.status_code == 200 and token.json()["role"] == "admin"
    finally:
        server.terminate()
        server.wait(60)
