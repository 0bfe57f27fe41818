"""The web app through FastAPI's test client: every API endpoint, access checks, audit, runs.

One server for the module, on the shipped default generator and the bundled demo
gallery at tiny settings (2 rounds of 2 candidates, 2 sampler steps).
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time

import pytest

from tests.serve_helpers import (
    DESCRIPTION,
    PASSWORDS,
    SKETCH,
    TINY,
    bearer,
    make_app,
    require_models,
    upload,
    wait_for,
)

UPLOAD_LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    require_models()
    return make_app(
        tmp_path_factory.mktemp("serve"),
        workers=2,
        queue_size=2,
        max_upload_bytes=UPLOAD_LIMIT,
        choice_timeout=120,
        **TINY,
    )


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # runs the lifespan: workers start, models load
        yield client


@pytest.fixture(scope="module")
def alice(client):
    return bearer(client, "alice")


@pytest.fixture(scope="module")
def bob(client):
    return bearer(client, "bob")


@pytest.fixture(scope="module")
def admin(client):
    return bearer(client, "admin")


@pytest.fixture(scope="module")
def case(client, alice):
    """Alice's case with a sketch and a description of witness W1."""
    made = client.post("/api/v1/cases", json={"title": "Robbery, Station Road"}, headers=alice)
    assert made.status_code == 201, made.text
    case = made.json()
    sketch = upload(client, alice, case["id"], "sketch", data=SKETCH.read_bytes(), name="w1.png")
    text = upload(client, alice, case["id"], "text")
    assert sketch.status_code == 201 and text.status_code == 201, (sketch.text, text.text)
    return {**case, "sketch": sketch.json(), "text": text.json()}


def _audit(app, **filters):
    return app.state.services.audit.entries(limit=1000, **filters)


def _start(client, headers, case, **body):
    evidence = [case["sketch"]["id"], case["text"]["id"]]
    response = client.post(
        f"/api/v1/cases/{case['id']}/runs",
        json={"gallery": "demo", "evidence": evidence, **body},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return response.json()


# -- authentication -----------------------------------------------------------------------


API_ROUTES = [
    ("get", "/api/v1/me"),
    ("get", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/1"),
    ("get", "/api/v1/galleries"),
    ("get", "/api/v1/cases"),
    ("post", "/api/v1/cases"),
    ("get", "/api/v1/cases/1"),
    ("post", "/api/v1/cases/1/shares"),
    ("post", "/api/v1/cases/1/evidence"),
    ("get", "/api/v1/cases/1/evidence/1/file"),
    ("post", "/api/v1/cases/1/runs"),
    ("get", "/api/v1/runs/1"),
    ("post", "/api/v1/runs/1/choice"),
    ("post", "/api/v1/runs/1/cancel"),
    ("get", "/api/v1/runs/1/images/" + "0" * 64),
    ("get", "/api/v1/runs/1/result.json"),
    ("get", "/api/v1/runs/1/provenance.json"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/unlock"),
    ("get", "/api/v1/openapi.json"),
]


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_every_api_route_needs_a_token(client, method, path):
    from fastapi.testclient import TestClient

    anonymous = TestClient(client.app)
    for headers in ({}, {"Authorization": "Bearer ff_not-a-real-token"}):
        response = getattr(anonymous, method)(path, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_openapi_description_lists_every_api_route(client, alice):
    spec = client.get("/api/v1/openapi.json", headers=alice).json()
    documented = {(m, p) for p, item in spec["paths"].items() for m in item}
    for method, path in API_ROUTES[:-1]:
        template = re.sub(r"/\d+", "/{id}", path).replace("0" * 64, "{sha256}")
        assert any(
            m == method and re.sub(r"\{[^}]+\}", "{id}", p) == template.replace("{sha256}", "{id}")
            for m, p in documented
        ), path
    assert "/api/v1/tokens" in spec["paths"]


def test_pages_send_anonymous_visitors_to_the_login_form(client):
    from fastapi.testclient import TestClient

    anonymous = TestClient(client.app)
    for path in ("/", "/cases/1", "/runs/1", "/runs/1/report", "/admin/audit", "/api/v1/docs"):
        response = anonymous.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    assert anonymous.get("/static/htmx.min.js").status_code == 200


def test_tokens_are_given_for_the_right_password_only(client, app):
    wrong = client.post("/api/v1/tokens", json={"name": "alice", "password": "guess-guess"})
    assert wrong.status_code == 401
    assert any(
        e["action"] == "login.api" and e["outcome"] == "denied" and e["target"] == "alice"
        for e in _audit(app)
    )
    me = client.get("/api/v1/me", headers=bearer(client, "bob")).json()
    assert me == {"name": "bob", "role": "investigator"}


# -- cases and evidence -------------------------------------------------------------------


def test_cases_are_listed_searched_and_audited(client, app, alice, case):
    listed = client.get("/api/v1/cases", headers=alice).json()["cases"]
    assert [c["id"] for c in listed] == [case["id"]]
    assert client.get("/api/v1/cases?q=station", headers=alice).json()["cases"]
    assert client.get("/api/v1/cases?q=harbour", headers=alice).json()["cases"] == []
    searches = _audit(app, user_name="alice", action="case.search")
    assert {e["detail"] for e in searches} >= {'{"q": "station"}', '{"q": "harbour"}'}
    bad = client.post("/api/v1/cases", json={"title": "   "}, headers=alice)
    assert bad.status_code == 400 and "title" in bad.json()["detail"]


def test_evidence_is_stored_by_its_sha256_and_served_unchanged(client, app, alice, case):
    data = SKETCH.read_bytes()
    assert case["sketch"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert case["sketch"]["media_type"] == "image/png"
    served = client.get(
        f"/api/v1/cases/{case['id']}/evidence/{case['sketch']['id']}/file", headers=alice
    )
    assert served.content == data
    assert app.state.services.blobs.verify(case["sketch"]["sha256"])
    text_sha = hashlib.sha256(DESCRIPTION.encode()).hexdigest()
    assert case["text"]["sha256"] == text_sha and case["text"]["text"] == DESCRIPTION
    listed = client.get(f"/api/v1/cases/{case['id']}", headers=alice).json()["evidence"]
    assert [e["kind"] for e in listed][:2] == ["sketch", "text"]


def test_bad_uploads_are_refused_with_the_reason(client, app, alice, case):
    from PIL import Image

    cid = case["id"]
    pdf = upload(client, alice, cid, "sketch", data=b"%PDF-1.4 a document", name="sketch.png")
    assert pdf.status_code == 400 and "sketch.png: not an image file" in pdf.json()["detail"]
    bomb = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(bomb, format="PNG")
    refused = upload(client, alice, cid, "lq", data=bomb.getvalue(), name="frame.png")
    assert refused.status_code == 400 and "50,000,000 pixels" in refused.json()["detail"]
    huge = upload(client, alice, cid, "lq", data=b"\0" * (UPLOAD_LIMIT + 1), name="big.png")
    assert huge.status_code == 413 and "upload limit" in huge.json()["detail"]
    kind = upload(client, alice, cid, "photo", data=SKETCH.read_bytes())
    assert kind.status_code == 400 and "'sketch' or 'lq'" in kind.json()["detail"]
    empty = upload(client, alice, cid, "text", text="  ")
    assert empty.status_code == 400
    refusals = _audit(app, case_id=cid, action="evidence.refused")
    assert len(refusals) >= 5
    kinds = {
        e["kind"] for e in client.get(f"/api/v1/cases/{cid}", headers=alice).json()["evidence"]
    }
    assert kinds == {"sketch", "text"}  # nothing refused was stored


def test_another_users_case_is_refused_and_audited(client, app, alice, bob, admin, case):
    cid = case["id"]
    assert client.get("/api/v1/cases", headers=bob).json()["cases"] == []
    for path in (f"/api/v1/cases/{cid}", f"/api/v1/cases/{cid}/evidence/1/file"):
        response = client.get(path, headers=bob)
        assert response.status_code == 404 and "not shared with you" in response.json()["detail"]
    assert upload(client, bob, cid, "text").status_code == 404
    denied = [e for e in _audit(app, case_id=cid, user_name="bob") if e["outcome"] == "denied"]
    assert {e["action"] for e in denied} >= {"case.view", "evidence.view", "evidence.upload"}
    assert client.get(f"/api/v1/cases/{cid}", headers=admin).status_code == 200
    # only the owner shares; once shared, bob sees it
    assert (
        client.post(f"/api/v1/cases/{cid}/shares", json={"user": "bob"}, headers=bob).status_code
        == 404
    )
    shared = client.post(f"/api/v1/cases/{cid}/shares", json={"user": "bob"}, headers=alice)
    assert shared.json()["shared_with"] == ["bob"]
    assert client.get(f"/api/v1/cases/{cid}", headers=bob).status_code == 200


# -- runs ---------------------------------------------------------------------------------


def test_a_run_pauses_for_the_investigators_choices(client, app, alice, case):
    run = _start(client, alice, case)
    rid = run["id"]
    view = wait_for(client, alice, rid, ("waiting",))
    assert view["awaiting_choice"] == 0 and len(view["rounds"]) == 1
    candidates = view["rounds"][0]["candidates"]
    assert len(candidates) == TINY["candidates"]
    wrong = client.post(f"/api/v1/runs/{rid}/choice", json={"round": 1, "pick": 0}, headers=alice)
    assert wrong.status_code == 409 and "round 0, not round 1" in wrong.json()["detail"]
    outside = client.post(f"/api/v1/runs/{rid}/choice", json={"round": 0, "pick": 5}, headers=alice)
    assert outside.status_code == 409 and "no candidate 5" in outside.json()["detail"]
    chosen = client.post(
        f"/api/v1/runs/{rid}/choice", json={"round": 0, "pick": 1, "reject": [0]}, headers=alice
    )
    assert chosen.status_code == 200 and chosen.json()["status"] == "running"
    view = wait_for(client, alice, rid, ("waiting", "finished"))
    if view["status"] == "waiting":
        assert "investigator pick 0/1" in view["rounds"][1]["reference"]
        client.post(f"/api/v1/runs/{rid}/choice", json={"round": 1, "accept": True}, headers=alice)
        view = wait_for(client, alice, rid, ("finished",))
    first = view["rounds"][0]
    assert first["choice"] == {"by": "investigator", "pick": 1, "reject": [0], "accept": False}
    assert [c["rejected"] for c in first["candidates"]] == [True, False]
    assert view["matches"] and view["verdict"]["message"].startswith(("Likely", "No likely"))
    assert all(m["photo"] for m in view["matches"])  # every ranked identity has its photo

    result = client.get(f"/api/v1/runs/{rid}/result.json", headers=alice).json()
    assert [m["identity"] for m in result["matches"]] == [m["identity"] for m in view["matches"]]
    provenance = client.get(f"/api/v1/runs/{rid}/provenance.json", headers=alice).json()
    assert provenance["inputs"]["sketch"]["sha256"] == case["sketch"]["sha256"]
    assert provenance["text"] == DESCRIPTION
    assert provenance["seeds"]["rounds"] and provenance["model"]["files"]
    image = client.get(f"/api/v1/runs/{rid}/images/{candidates[0]['image']}", headers=alice)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    photo = client.get(f"/api/v1/runs/{rid}/images/{view['matches'][0]['photo']}", headers=alice)
    assert photo.status_code == 200
    # a blob that is not this run's (the evidence) is not served through the run
    other = client.get(f"/api/v1/runs/{rid}/images/{case['sketch']['sha256']}", headers=alice)
    assert other.status_code == 404
    exports = _audit(app, case_id=case["id"], action="run.export")
    assert {e["detail"] for e in exports} >= {
        f'{{"file": "result.json", "run": {rid}}}',
        f'{{"file": "provenance.json", "run": {rid}}}',
    }


def test_a_run_cancelled_mid_way_keeps_its_finished_rounds(client, alice, case):
    run = _start(client, alice, case)
    rid = run["id"]
    wait_for(client, alice, rid, ("waiting",))
    client.post(f"/api/v1/runs/{rid}/choice", json={"round": 0}, headers=alice)
    cancelled = client.post(f"/api/v1/runs/{rid}/cancel", headers=alice).json()
    assert cancelled["cancelling"] is True
    view = wait_for(client, alice, rid, ("cancelled",))
    assert "cancelled" in view["error"] and "1 complete round" in view["error"]
    result = client.get(f"/api/v1/runs/{rid}/result.json", headers=alice).json()
    assert len(result["rounds"]) == 1  # round 0 finished; round 1 was stopped
    again = client.post(f"/api/v1/runs/{rid}/cancel", headers=alice).json()
    assert again == {"cancelling": False, "status": "cancelled"}


def test_two_runs_at_once_do_not_disturb_each_other(client, app, alice, bob):
    """Two users' runs on one shared pipeline, side by side, give the results each gives alone."""
    cases = []
    for who in (alice, bob):
        made = client.post("/api/v1/cases", json={"title": "parallel"}, headers=who).json()
        sketch = upload(client, who, made["id"], "sketch", data=SKETCH.read_bytes()).json()
        text = upload(client, who, made["id"], "text").json()
        cases.append({**made, "sketch": sketch, "text": text})
    runs: list = [None, None]

    def start(i: int, who: dict) -> None:
        runs[i] = _start(client, who, cases[i], interactive=False)

    threads = [threading.Thread(target=start, args=(i, w)) for i, w in enumerate((alice, bob))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    views = [wait_for(client, w, r["id"], ("finished",)) for w, r in zip((alice, bob), runs)]
    starts = sorted(v["started"] for v in views)
    ends = sorted(v["finished"] for v in views)
    assert starts[1] < ends[0], "the runs did not overlap"
    results = [
        client.get(f"/api/v1/runs/{r['id']}/result.json", headers=w).json()
        for w, r in zip((alice, bob), runs)
    ]
    assert results[0] == results[1]
    assert app.state.services.db.one("SELECT COUNT(*) FROM runs WHERE status = 'failed'")[0] == 0


def test_a_full_queue_refuses_new_runs(client, alice, case):
    rids = []
    for _ in range(2):  # both workers held by runs that wait for a choice
        rid = _start(client, alice, case)["id"]
        wait_for(client, alice, rid, ("waiting",))
        rids.append(rid)
    rids += [_start(client, alice, case)["id"] for _ in range(2)]  # fills the queue of 2
    full = client.post(
        f"/api/v1/cases/{case['id']}/runs",
        json={"gallery": "demo", "evidence": [case["sketch"]["id"]]},
        headers=alice,
    )
    assert full.status_code == 503 and "queue is full" in full.json()["detail"]
    assert client.get(f"/api/v1/runs/{rids[3]}", headers=alice).json()["queue_position"] == 2
    for rid in rids:
        client.post(f"/api/v1/runs/{rid}/cancel", headers=alice)
    for rid in rids:
        wait_for(client, alice, rid, ("cancelled",))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"gallery": "mugshots"}, "not served here"),
        ({"evidence": []}, "needs evidence"),
        ({"rounds": 9}, "rounds: choose 1 to 2"),
        ({"evidence": [999_999]}, "unknown evidence"),
    ],
)
def test_bad_run_requests_are_refused(client, alice, case, body, message):
    request = {"gallery": "demo", "evidence": [case["sketch"]["id"]], **body}
    response = client.post(f"/api/v1/cases/{case['id']}/runs", json=request, headers=alice)
    assert response.status_code == 400 and message in response.json()["detail"]


def test_a_run_takes_one_witness_and_one_item_of_each_kind(client, alice, case):
    cid = case["id"]
    other = upload(client, alice, cid, "text", witness="W2", text="an old man").json()
    second = upload(client, alice, cid, "text", text="a woman in her twenties").json()
    for evidence, message in (
        ([case["sketch"]["id"], other["id"]], "one witness per run"),
        ([case["text"]["id"], second["id"]], "at most one sketch"),
    ):
        response = client.post(
            f"/api/v1/cases/{cid}/runs",
            json={"gallery": "demo", "evidence": evidence},
            headers=alice,
        )
        assert response.status_code == 400 and message in response.json()["detail"]


# -- admin --------------------------------------------------------------------------------


def test_only_admins_read_the_audit_log(client, app, alice, admin):
    refused = client.get("/api/v1/audit", headers=alice)
    assert refused.status_code == 403
    log = client.get("/api/v1/audit?action=case.view&limit=5", headers=admin).json()
    assert log["chain"]["intact"] and log["chain"]["records"] > 0
    assert 0 < len(log["entries"]) <= 5 and {e["action"] for e in log["entries"]} == {"case.view"}
    assert any(
        e["action"] == "audit.view" and e["outcome"] == "denied" and e["user_name"] == "alice"
        for e in _audit(app)
    )


# -- pages --------------------------------------------------------------------------------


def _login(app, name: str):
    from fastapi.testclient import TestClient

    browser = TestClient(app)
    form = browser.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    page = browser.post(
        "/login", data={"name": name, "password": PASSWORDS[name], "csrf": csrf, "next": "/"}
    )
    assert page.status_code == 200 and "Log out" in page.text
    return browser, re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_forms_without_the_sessions_csrf_token_are_refused(client, app):
    browser, csrf = _login(app, "alice")
    refused = browser.post("/cases", data={"title": "forged", "csrf": "not-the-token"})
    assert refused.status_code == 403 and "stale" in refused.text
    made = browser.post("/cases", data={"title": "Burglary", "csrf": csrf})
    assert made.status_code == 200 and "Burglary" in made.text
    assert any(e["action"] == "csrf" and e["outcome"] == "denied" for e in _audit(app))
    login_form = browser.get("/login").text
    forged = browser.post(
        "/login", data={"name": "alice", "password": PASSWORDS["alice"], "csrf": "x"}
    )
    assert forged.status_code == 401 and 'name="csrf"' in login_form


def test_the_pages_show_a_case_its_runs_and_the_report(client, app, alice, case):
    rid = _start(client, alice, case, interactive=False)["id"]
    wait_for(client, alice, rid, ("finished",))
    browser, csrf = _login(app, "alice")
    cid = case["id"]
    page = browser.get(f"/cases/{cid}").text
    assert "Robbery, Station Road" in page and f"/runs/{rid}" in page
    assert f"/cases/{cid}/evidence/{case['sketch']['id']}" in page and DESCRIPTION in page
    run_page = browser.get(f"/runs/{rid}").text
    assert 'id="verdict"' in run_page and "/images/" in run_page
    assert 'hx-trigger="every 1s"' not in run_page  # a finished run does not poll
    live = browser.get(f"/runs/{rid}/live").text
    assert live.startswith('\n<div id="live"') or '<div id="live"' in live[:200]
    report = browser.get(f"/runs/{rid}/report").text
    assert "Case report" in report and case["sketch"]["sha256"] in report
    # the default pipeline calibrates: each identity's probability is shown on both pages
    top = client.get(f"/api/v1/runs/{rid}", headers=alice).json()["matches"][0]
    shown = f'<span class="score">probability {top["probability"]:.2f}</span>'
    assert shown in report and shown in run_page and "similarity" not in report
    assert "Provenance" in report and "Rounds and choices" in report
    download = browser.get(f"/runs/{rid}/result.json")
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.json()["format"] == "facefit-result/1"
    docs = browser.get("/api/v1/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "/api/v1/openapi.json" in docs
    token_page = browser.post("/account/tokens", data={"label": "script", "csrf": csrf}).text
    token = re.search(r'id="new-token">(ff_[^<]+)<', token_page).group(1)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert browser.get("/admin/audit").status_code == 403
    admin_browser, _ = _login(app, "admin")
    audit = admin_browser.get(f"/admin/audit?case_id={cid}").text
    assert "Hash chain intact" in audit and "run.report" in audit


def test_a_choice_posted_from_the_page_reaches_the_run(client, app, alice, case):
    rid = _start(client, alice, case)["id"]
    wait_for(client, alice, rid, ("waiting",))
    browser, csrf = _login(app, "alice")
    form = browser.get(f"/runs/{rid}").text
    assert 'id="choice-form"' in form and 'name="reject"' in form
    answer = browser.post(
        f"/runs/{rid}/choice",
        data={"round": "0", "pick": "0", "reject": ["1"], "action": "accept", "csrf": csrf},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200 and 'id="choice-form"' not in answer.text
    view = wait_for(client, alice, rid, ("finished",))
    assert view["rounds"][0]["choice"]["accept"] is True and len(view["rounds"]) == 1
    assert "investigator accepted round 0" in view["stopped"]


def test_page_loads_are_quick(client, app, case):
    """Page loads (no generation) well under 200 ms each on this CPU; the bound is loose for CI."""
    browser, _ = _login(app, "alice")
    timings = {}
    for path in ("/", f"/cases/{case['id']}"):
        browser.get(path)
        start = time.perf_counter()
        for _ in range(5):
            assert browser.get(path).status_code == 200
        timings[path] = (time.perf_counter() - start) / 5
    assert max(timings.values()) < 1.0, timings


def test_the_httpx_example_in_the_docs_drives_a_whole_case(client, app, capsys):
    from pathlib import Path

    from fastapi.testclient import TestClient  # an httpx.Client: the example's client type

    doc = (Path(__file__).resolve().parents[1] / "docs" / "web.md").read_text(encoding="utf-8")
    example = next(
        b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "def drive_case" in b
    )
    namespace: dict = {}
    exec(compile(example, "docs/web.md", "exec"), namespace)
    provenance = namespace["drive_case"](
        TestClient(app), "bob", PASSWORDS["bob"], str(SKETCH), DESCRIPTION
    )
    assert provenance["format"] == "facefit-provenance/1" and provenance["text"] == DESCRIPTION
    printed = capsys.readouterr().out
    assert "match" in printed and "1. photo" in printed


# -- the face check at upload ------------------------------------------------------------


def _png(image) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def faceless(client, app, alice):
    """Alice's case with a blank page, a noise "sketch" and the demo sketch of witness W2."""
    import numpy as np

    from tests.hostile_helpers import noise

    assert app.state.services.ready.wait(300), "the models did not load"
    assert app.state.services.load_error is None, app.state.services.load_error
    made = client.post("/api/v1/cases", json={"title": "Faceless evidence"}, headers=alice)
    cid = made.json()["id"]
    items = {}
    for key, data in (
        ("blank", _png(np.full((200, 160), 255, np.uint8))),
        ("noise", _png(noise((200, 160)))),
        ("sketch", SKETCH.read_bytes()),
    ):
        response = upload(client, alice, cid, "sketch", data=data, name=f"{key}.png", witness="W2")
        assert response.status_code == 201, response.text  # stored whatever the check says
        items[key] = response.json()
    return {"id": cid, **items}


def test_an_upload_without_a_face_is_stored_but_flagged(client, app, alice, faceless):
    from facefit.serve.facecheck import ALLOW_LABEL

    blank, noisy, sketch = (
        faceless["blank"]["face_check"],
        faceless["noise"]["face_check"],
        (faceless["sketch"]["face_check"]),
    )
    assert sketch["face"] is True and sketch["flagged"] is False
    assert sketch["use"] == "detected" and sketch["detector_score"] > 0.5
    assert blank["face"] is False and blank["flagged"] is True and blank["use"] == "refused"
    assert "blank" in blank["why"] and "check that the right file was given" in blank["why"]
    assert noisy["flagged"] and "no face detected in this sketch" in noisy["why"]
    # the SDK's advice, with the command line's --allow-no-face put as the run's option
    assert ALLOW_LABEL in noisy["why"] and "--allow-no-face" not in noisy["why"]
    listed = client.get(f"/api/v1/cases/{faceless['id']}", headers=alice).json()["evidence"]
    assert [e["face_check"]["face"] for e in listed] == [False, False, True]
    stored = _audit(app, case_id=faceless["id"], action="evidence.stored")
    assert sorted('"face": false' in e["detail"] for e in stored) == [False, True, True]
    browser, _ = _login(app, "alice")
    page = browser.get(f"/cases/{faceless['id']}").text
    assert page.count("No face found.") == 2 and "Face found (" in page
    assert "shows no face; check that the right file was given" in page
    assert 'name="allow_no_face" value="sketch"' in page  # the run form offers the option


def test_a_run_on_an_image_without_a_face_is_refused_unless_allowed(client, alice, faceless):
    cid, noisy = faceless["id"], faceless["noise"]["id"]
    runs = f"/api/v1/cases/{cid}/runs"
    refused = client.post(runs, json={"gallery": "demo", "evidence": [noisy]}, headers=alice)
    assert refused.status_code == 400
    assert f"evidence #{noisy} (sketch): noise.png: no face detected" in refused.json()["detail"]
    # a blank page is refused whatever is allowed, as on the command line
    blank = {"gallery": "demo", "evidence": [faceless["blank"]["id"]], "allow_no_face": ["sketch"]}
    assert client.post(runs, json=blank, headers=alice).status_code == 400
    allowed = {"gallery": "demo", "evidence": [noisy], "allow_no_face": ["sketch"], "rounds": 1}
    started = client.post(runs, json=allowed, headers=alice)
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["options"]["allow_no_face"] == ["sketch"]
    assert run["caution"] and run["caution"][0].startswith("sketch: CAUTION no face detected")
    # the worker got the allowance too: the run reaches its round instead of failing
    view = wait_for(client, alice, run["id"], ("waiting", "finished"))
    assert view["caution"]
    client.post(f"/api/v1/runs/{run['id']}/cancel", headers=alice)
    wait_for(client, alice, run["id"], ("cancelled", "finished"))
    bad = {"gallery": "demo", "evidence": [noisy], "allow_no_face": ["photo"]}
    assert "allow_no_face" in client.post(runs, json=bad, headers=alice).json()["detail"]


def test_the_run_form_refuses_a_faceless_sketch_with_what_to_do(app, faceless):
    browser, csrf = _login(app, "alice")
    form = {"gallery": "demo", "sketch": str(faceless["noise"]["id"]), "csrf": csrf}
    refused = browser.post(f"/cases/{faceless['id']}/runs", data=form)
    assert refused.status_code == 400 and "no face detected in this sketch" in refused.text


def test_an_image_not_checked_yet_is_checked_when_its_case_is_shown(client, app, alice, faceless):
    svc = app.state.services
    svc.db.execute("DELETE FROM evidence_checks WHERE evidence_id = ?", (faceless["noise"]["id"],))
    item = svc.cases.evidence_item(faceless["noise"]["id"])
    assert item.face_check is None and item.to_dict()["face_check"] is None
    listed = client.get(f"/api/v1/cases/{faceless['id']}", headers=alice).json()["evidence"]
    assert listed[1]["face_check"]["flagged"] is True
    assert svc.cases.evidence_item(faceless["noise"]["id"]).face_check is not None


def test_uploads_while_the_models_load_wait_for_their_check(tmp_path):
    import numpy as np
    from fastapi.testclient import TestClient

    app = make_app(tmp_path / "loading", load_models=False)
    client = TestClient(app)  # no lifespan: the models never load
    headers = bearer(client, "alice")
    cid = client.post("/api/v1/cases", json={"title": "Early"}, headers=headers).json()["id"]
    stored = upload(client, headers, cid, "lq", data=_png(np.full((64, 64, 3), 90, np.uint8)))
    assert stored.status_code == 201 and stored.json()["face_check"] is None
    browser, _ = _login(app, "alice")
    assert "Face check: waiting for the models" in browser.get(f"/cases/{cid}").text
