"""Login throttling: failed logins per user name and per address cool down, audited.

The app runs without models (``load_models=False``): logging in needs none. The
throttle's clock is replaced by a settable one, so a cool-down ends without waiting.
"""

from __future__ import annotations

import pytest

from tests.serve_helpers import PASSWORDS, make_app

LIMIT = 3
PER_ADDRESS = 7
WINDOW = 600.0
COOLDOWN = 300.0


class Clock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(tmp_path):
    pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
    app = make_app(
        tmp_path / "serve",
        load_models=False,
        login_failures=LIMIT,
        login_failures_per_address=PER_ADDRESS,
        login_window=WINDOW,
        login_cooldown=COOLDOWN,
    )
    app.state.services.throttle.clock = Clock()
    return app


def _client(app, address: str = "10.0.0.1"):
    from fastapi.testclient import TestClient

    return TestClient(app, client=(address, 40000))


def _token(client, name: str, password: str):
    return client.post("/api/v1/tokens", json={"name": name, "password": password})


def _audit(app, action: str) -> list[dict]:
    rows = app.state.services.audit.entries(limit=1000, action=action)
    return [r for r in reversed(rows) if r["action"] == action]


def test_the_attempt_after_the_limit_is_refused_even_with_the_right_password(app):
    client = _client(app)
    for _ in range(LIMIT):
        assert _token(client, "alice", "wrong-password").status_code == 401
    refused = _token(client, "alice", PASSWORDS["alice"])
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) == COOLDOWN
    assert "Try again after" in refused.json()["detail"]
    assert "token" not in refused.json()
    rows = _audit(app, "login.api")
    assert [r["outcome"] for r in rows] == ["denied"] * LIMIT + ["refused"]
    assert all(r["target"] == "alice" and r["ip"] == "10.0.0.1" for r in rows)
    assert '"failures": 3' in rows[LIMIT - 1]["detail"]
    assert '"throttled": "name"' in rows[-1]["detail"]


def test_the_cool_down_ends_and_a_success_resets_the_users_count(app):
    client, clock = _client(app), app.state.services.throttle.clock
    for _ in range(LIMIT):
        _token(client, "alice", "wrong-password")
    clock.now += COOLDOWN - 1
    refused = _token(client, "alice", PASSWORDS["alice"])
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    clock.now += 1
    assert _token(client, "alice", PASSWORDS["alice"]).status_code == 200
    assert app.state.services.throttle.failures(name="alice") == 0
    # the count starts again: LIMIT - 1 failures leave the next attempt free
    for _ in range(LIMIT - 1):
        assert _token(client, "alice", "wrong-password").status_code == 401
    assert _token(client, "alice", PASSWORDS["alice"]).status_code == 200


def test_failures_spread_wider_than_the_window_do_not_lock(app):
    client, clock = _client(app), app.state.services.throttle.clock
    for _ in range(LIMIT + 2):
        assert _token(client, "alice", "wrong-password").status_code == 401
        clock.now += WINDOW / (LIMIT - 1) + 1
    assert _token(client, "alice", PASSWORDS["alice"]).status_code == 200


def test_another_user_and_another_address_are_not_affected(app):
    client = _client(app)
    for _ in range(LIMIT):
        _token(client, "alice", "wrong-password")
    assert _token(client, "alice", PASSWORDS["alice"]).status_code == 429
    assert _token(client, "bob", PASSWORDS["bob"]).status_code == 200
    # the user name is locked from every address (a guesser may change address)
    assert _token(_client(app, "10.0.0.2"), "alice", PASSWORDS["alice"]).status_code == 429


def test_too_many_failures_from_one_address_lock_that_address_only(app):
    client = _client(app, "10.0.0.9")
    names = [f"guess{i}" for i in range(PER_ADDRESS)]
    for name in names:  # one failure per name: no name reaches its limit
        assert _token(client, name, "wrong-password").status_code == 401
    refused = _token(client, "bob", PASSWORDS["bob"])
    assert refused.status_code == 429
    assert '"throttled": "address"' in _audit(app, "login.api")[-1]["detail"]
    assert _token(_client(app, "10.0.0.10"), "bob", PASSWORDS["bob"]).status_code == 200


def test_a_refusal_does_not_say_whether_the_user_exists(app):
    client = _client(app)
    answers = []
    for name in ("alice", "nobody"):
        for _ in range(LIMIT):
            assert _token(client, name, "wrong-password").status_code == 401
        answers.append(_token(client, name, "wrong-password"))
    alice, nobody = answers
    assert alice.status_code == nobody.status_code == 429
    assert alice.json() == nobody.json()
    assert alice.headers["retry-after"] == nobody.headers["retry-after"]


def test_the_login_form_is_throttled_and_audited(app):
    import re

    client = _client(app)

    def post(password: str):
        form = client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)[1]
        return client.post(
            "/login",
            data={"name": "alice", "password": password, "csrf": csrf, "next": "/"},
            follow_redirects=False,
        )

    for _ in range(LIMIT):
        assert post("wrong-password").status_code == 401
    refused = post(PASSWORDS["alice"])
    assert refused.status_code == 429
    assert "Try again after" in refused.text and refused.headers["retry-after"]
    assert "facefit_session" not in refused.cookies
    assert [r["outcome"] for r in _audit(app, "login")] == ["denied"] * LIMIT + ["refused"]
    # the form and the API share one count
    assert _token(client, "alice", PASSWORDS["alice"]).status_code == 429
    app.state.services.throttle.clock.now += COOLDOWN
    assert post(PASSWORDS["alice"]).status_code == 303


def test_a_stale_login_form_does_not_count_as_a_guess(app):
    client = _client(app)
    for _ in range(LIMIT + 1):
        response = client.post("/login", data={"name": "alice", "password": "x", "csrf": "stale"})
        assert response.status_code == 401
    assert app.state.services.throttle.failures(name="alice") == 0
    assert _token(client, "alice", PASSWORDS["alice"]).status_code == 200


def test_the_count_survives_a_restart(app, tmp_path):
    client = _client(app)
    for _ in range(LIMIT):
        _token(client, "alice", "wrong-password")
    clock = app.state.services.throttle.clock
    app.state.services.db.close()
    again = make_app(tmp_path / "serve", load_models=False, login_failures=LIMIT)
    again.state.services.throttle.clock = clock
    assert _token(_client(again), "alice", PASSWORDS["alice"]).status_code == 429


def test_throttle_settings_are_checked(tmp_path):
    from facefit.errors import InputError
    from facefit.serve.settings import ServeSettings

    with pytest.raises(InputError, match="login-failures"):
        ServeSettings(data_dir=tmp_path, login_failures=0)
    with pytest.raises(InputError, match="login-cooldown"):
        ServeSettings(data_dir=tmp_path, login_cooldown=0)


def test_parallel_guesses_cannot_slip_past_the_limit(app):
    from concurrent.futures import ThreadPoolExecutor

    from facefit.serve.throttle import Refusal

    svc = app.state.services
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: svc.login("alice", "wrong-password", "10.0.0.5", "login"), range(8))
        )
    assert sum(a is None for a in answers) == LIMIT  # only LIMIT passwords were checked
    assert sum(isinstance(a, Refusal) for a in answers) == 8 - LIMIT


def test_serve_flags_reach_the_limits_and_bad_ones_are_refused(tmp_path, monkeypatch):
    """`facefit serve --login-*` sets the limits; a bad value stops before serving."""
    from click.testing import CliRunner

    import facefit.serve.app as app_module
    from facefit.cli import main

    seen = {}

    def fake_create_app(settings):
        seen["settings"] = settings
        raise SystemExit(0)  # stop before loading models or binding a port

    monkeypatch.setattr(app_module, "create_app", fake_create_app)
    monkeypatch.setattr("facefit.pipeline.demo.require_default_model", lambda: None)
    args = ["serve", "--data", str(tmp_path / "d"), "--login-failures", "3"]
    args += ["--login-failures-per-address", "9", "--login-window", "60", "--login-cooldown", "30"]
    CliRunner().invoke(main, args)
    settings = seen["settings"]
    assert (settings.login_failures, settings.login_failures_per_address) == (3, 9)
    assert (settings.login_window, settings.login_cooldown) == (60.0, 30.0)
    bad = CliRunner().invoke(
        main, ["serve", "--data", str(tmp_path / "d"), "--login-failures", "0"]
    )
    assert bad.exit_code != 0 and "--login-failures must be at least 1" in bad.output


# -- an admin lifts a lock ----------------------------------------------------------------


def _lock(app, name: str = "alice", address: str = "10.0.0.1") -> None:
    client = _client(app, address)
    for _ in range(LIMIT):
        assert _token(client, name, "wrong-password").status_code == 401
    assert _token(client, name, PASSWORDS[name]).status_code == 429


def _page_login(app, name: str, address: str):
    import re

    client = _client(app, address)
    form = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)[1]
    page = client.post("/login", data={"name": name, "password": PASSWORDS[name], "csrf": csrf})
    assert page.status_code == 200 and "Log out" in page.text, page.text
    return client, re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def test_an_admin_unlocks_a_user_name_on_the_users_page(app):
    _lock(app)
    admin, csrf = _page_login(app, "admin", "10.0.0.2")
    users = admin.get("/admin/users").text
    assert 'id="lock-list"' in users and "alice" in users
    unlock = {"kind": "name", "value": "alice"}
    forged = admin.post("/admin/unlock", data={**unlock, "csrf": "not-the-token"})
    assert forged.status_code == 403
    assert _token(_client(app, "10.0.0.3"), "alice", PASSWORDS["alice"]).status_code == 429
    done = admin.post("/admin/unlock", data={**unlock, "csrf": csrf})
    assert done.status_code == 200 and 'id="unlocked"' in done.text and 'id="no-locks"' in done.text
    # at once, long before the cool-down ends, from the address that made the failures too
    assert _token(_client(app), "alice", PASSWORDS["alice"]).status_code == 200
    [record] = _audit(app, "login.unlock")
    assert (record["user_name"], record["target"], record["outcome"]) == ("admin", "alice", "ok")
    assert record["detail"] == f'{{"attempts": {LIMIT}, "kind": "name"}}'  # refusals add no row


def test_investigators_cannot_unlock_and_are_audited(app):
    _lock(app)
    bob, csrf = _page_login(app, "bob", "10.0.0.2")
    refused = bob.post("/admin/unlock", data={"kind": "name", "value": "alice", "csrf": csrf})
    assert refused.status_code == 403
    assert bob.get("/admin/users").status_code == 403
    bob_api = {"Authorization": f"Bearer {_token(bob, 'bob', PASSWORDS['bob']).json()['token']}"}
    assert bob.post("/api/v1/unlock", json={"name": "alice"}, headers=bob_api).status_code == 403
    assert bob.get("/api/v1/users", headers=bob_api).status_code == 403
    assert [r["outcome"] for r in _audit(app, "login.unlock")] == ["denied", "denied"]
    assert _token(_client(app, "10.0.0.3"), "alice", PASSWORDS["alice"]).status_code == 429


def test_the_api_lists_locks_and_unlocks_an_address(app):
    throttle = app.state.services.throttle
    guesser = _client(app, "10.0.0.9")
    for i in range(PER_ADDRESS):
        assert _token(guesser, f"guess{i}", "wrong-password").status_code == 401
    assert _token(guesser, "alice", PASSWORDS["alice"]).status_code == 429
    client = _client(app, "10.0.0.2")
    admin = {
        "Authorization": f"Bearer {_token(client, 'admin', PASSWORDS['admin']).json()['token']}"
    }
    listing = client.get("/api/v1/users", headers=admin).json()
    assert {u["name"] for u in listing["users"]} == {"admin", "alice", "bob"}
    [lock] = listing["locks"]
    assert (lock["kind"], lock["value"], lock["failures"]) == ("address", "10.0.0.9", PER_ADDRESS)
    assert lock["until"].startswith("20")
    for body in ({}, {"name": "alice", "address": "10.0.0.9"}):
        assert client.post("/api/v1/unlock", json=body, headers=admin).status_code == 400
    done = client.post("/api/v1/unlock", json={"address": "10.0.0.9"}, headers=admin).json()
    assert done == {"kind": "address", "value": "10.0.0.9", "attempts": PER_ADDRESS}
    assert throttle.locks() == []
    assert _token(guesser, "alice", PASSWORDS["alice"]).status_code == 200
    # nothing locked: the unlock is still recorded, with nothing forgotten
    again = client.post("/api/v1/unlock", json={"name": "bob"}, headers=admin).json()
    assert again["attempts"] == 0
    assert [r["target"] for r in _audit(app, "login.unlock")] == ["10.0.0.9", "bob"]


def test_a_lock_ends_by_itself_and_leaves_the_list(app):
    _lock(app)
    throttle = app.state.services.throttle
    assert [(lock.kind, lock.value) for lock in throttle.locks()] == [("name", "alice")]
    throttle.clock.now += COOLDOWN
    assert throttle.locks() == []


def test_facefit_users_unlock_lifts_a_lock_from_the_command_line(app, tmp_path):
    from click.testing import CliRunner

    from facefit.cli import main

    _lock(app)
    data = ["--data", str(tmp_path / "serve")]
    runner = CliRunner()
    neither = runner.invoke(main, ["users", "unlock", *data])
    assert neither.exit_code == 2 and "give a user name or --address" in neither.output
    done = runner.invoke(main, ["users", "unlock", "Alice", *data])
    assert done.exit_code == 0, done.output
    assert f"alice: unlocked ({LIMIT} recorded attempts forgotten)" in done.output
    assert _token(_client(app), "alice", PASSWORDS["alice"]).status_code == 200
    address = runner.invoke(main, ["users", "unlock", "--address", "10.0.0.1", *data])
    assert address.exit_code == 0 and "10.0.0.1: unlocked" in address.output
    unknown = runner.invoke(main, ["users", "unlock", "nobody", *data])
    assert "there is no user 'nobody'" in unknown.output
    records = _audit(app, "login.unlock")
    assert [r["target"] for r in records] == ["alice", "10.0.0.1", "nobody"]
    assert all(r["user_name"].startswith("cli:") for r in records)
