"""The web app's storage, audit log, accounts and run queue, without models or a browser."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import stat
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")

from facefit.errors import InputError
from facefit.serve.audit import AuditLog
from facefit.serve.auth import Sessions, Tokens, Users
from facefit.serve.db import Database, now
from facefit.serve.runs import QueueFull, RunManager
from facefit.serve.storage import BlobStore, check_image, check_text, read_limited
from tests.serve_helpers import SKETCH


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "facefit.sqlite3")
    yield database
    database.close()


# -- content-addressed storage ------------------------------------------------------------


def test_blobs_are_named_by_their_sha256_stored_once_and_read_only(tmp_path):
    import hashlib

    store = BlobStore(tmp_path / "blobs")
    data = SKETCH.read_bytes()
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.put(data) == sha
    path = store.path(sha)
    assert path.read_bytes() == data
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert len(list((tmp_path / "blobs").rglob("*.bin"))) == 1
    assert store.verify(sha)


def test_blob_paths_accept_only_checksums(tmp_path):
    store = BlobStore(tmp_path)
    with pytest.raises(InputError, match="not a sha256"):
        store.path("../../etc/passwd")


def test_uploads_are_sniffed_not_trusted_by_name():
    checked = check_image(SKETCH.read_bytes(), "witness.jpg", max_pixels=40_000_000)
    assert checked.media_type == "image/png"  # the bytes say PNG, whatever the name says
    assert checked.image.ndim == 3
    with pytest.raises(InputError, match=r"sketch\.png: not an image file"):
        check_image(b"%PDF-1.4 not a picture", "sketch.png", max_pixels=40_000_000)


def test_decompression_bombs_and_tiny_images_are_refused():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(buffer, format="PNG")  # 50 Mpx in a few KB
    assert len(buffer.getvalue()) < 200_000
    with pytest.raises(InputError, match=r"bomb\.png: .*pixels"):
        check_image(buffer.getvalue(), "bomb.png", max_pixels=40_000_000)
    with pytest.raises(InputError, match="too small"):
        check_image(_png(np.zeros((4, 4, 3), np.uint8)), "dot.png", max_pixels=40_000_000)


def test_truncated_images_are_refused():
    data = SKETCH.read_bytes()
    with pytest.raises(InputError, match=r"half\.png: (damaged or truncated|not an image)"):
        check_image(data[: len(data) // 2], "half.png", max_pixels=40_000_000)


def test_uploads_past_the_limit_are_refused_while_reading():
    with pytest.raises(InputError, match="upload limit of 1 MiB"):
        read_limited(io.BytesIO(b"x" * (1024 * 1024 + 1)), 1024 * 1024, "big.png")
    with pytest.raises(InputError, match="empty"):
        read_limited(io.BytesIO(b""), 100, "nothing.png")
    assert read_limited(io.BytesIO(b"abc"), 3, "ok") == b"abc"


def test_descriptions_are_checked():
    assert check_text("  a man   with a beard ") == "a man with a beard"
    with pytest.raises(InputError, match="empty"):
        check_text("   ")
    with pytest.raises(InputError, match="under 2000"):
        check_text("x" * 2001)


# -- audit log ----------------------------------------------------------------------------


def test_the_audit_log_refuses_updates_and_deletes(db):
    audit = AuditLog(db)
    audit.record(None, "login", outcome="denied", target="mallory")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET outcome = 'ok'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit")
    assert [e["outcome"] for e in audit.entries()] == ["denied"]


def test_the_audit_chain_finds_a_record_changed_behind_its_back(db):
    audit = AuditLog(db)
    for i in range(5):
        audit.record(None, "case.view", case_id=i, detail={"i": i})
    assert audit.verify().intact and audit.verify().records == 5
    db.execute("DROP TRIGGER audit_no_update")  # what someone editing the file could do
    db.execute("UPDATE audit SET user_name = 'someone else' WHERE id = 3")
    check = audit.verify()
    assert not check.intact and check.first_broken == 3


def test_audit_entries_filter_by_case_user_and_action(db):
    users = Users(db)
    alice = users.add("alice", "alice-password-1")
    audit = AuditLog(db)
    audit.record(alice, "case.view", case_id=1)
    audit.record(alice, "run.export", case_id=2)
    audit.record(None, "login", outcome="denied")
    assert [e["action"] for e in audit.entries(case_id=2)] == ["run.export"]
    assert [e["action"] for e in audit.entries(user_name="alice", action="case.")] == ["case.view"]
    assert len(audit.entries(limit=2)) == 2


# -- accounts -----------------------------------------------------------------------------


def test_passwords_are_stored_as_argon2_hashes_and_checked(db):
    users = Users(db)
    users.add("alice", "alice-password-1")
    stored = db.one("SELECT password_hash FROM users WHERE name = 'alice'")[0]
    assert stored.startswith("$argon2id$") and "alice-password-1" not in stored
    assert users.authenticate("alice", "alice-password-1").name == "alice"
    assert users.authenticate("alice", "wrong-password") is None
    assert users.authenticate("nobody", "alice-password-1") is None


@pytest.mark.parametrize(
    ("name", "password", "role", "message"),
    [
        ("Alice!", "long-enough-1", "investigator", "user name"),
        ("alice", "short", "investigator", "at least 10"),
        ("alice", "long-enough-1", "chief", "role"),
    ],
)
def test_bad_accounts_are_refused(db, name, password, role, message):
    with pytest.raises(InputError, match=message):
        Users(db).add(name, password, role=role)


def test_disabling_a_user_ends_sessions_and_tokens(db):
    users, sessions, tokens = Users(db), Sessions(db), Tokens(db)
    alice = users.add("alice", "alice-password-1")
    cookie, csrf = sessions.create(alice)
    token = tokens.create(alice)
    assert sessions.get(cookie).csrf == csrf and tokens.user(token).name == "alice"
    assert (
        db.one("SELECT COUNT(*) FROM api_tokens WHERE token_hash = ?", (token,))[0] == 0
    )  # hashed
    users.set_disabled("alice")
    assert sessions.get(cookie) is None and tokens.user(token) is None
    assert users.authenticate("alice", "alice-password-1") is None
    users.set_disabled("alice", False)
    assert tokens.user(token).name == "alice"


def test_revoked_and_expired_credentials_stop_working(db):
    users = Users(db)
    alice = users.add("alice", "alice-password-1")
    tokens = Tokens(db)
    token = tokens.create(alice)
    assert tokens.revoke(token) and tokens.user(token) is None
    sessions = Sessions(db, hours=-1)  # expired as soon as made
    cookie, _ = sessions.create(alice)
    assert sessions.get(cookie) is None


# -- run queue ----------------------------------------------------------------------------


def _insert_run(db: Database, status: str = "queued") -> int:
    users = Users(db)
    owner = users.get("alice") or users.add("alice", "alice-password-1")
    if db.one("SELECT id FROM cases WHERE id = 1") is None:
        db.execute(
            "INSERT INTO cases (id, title, owner_id, created) VALUES (1, 'c', ?, ?)",
            (owner.id, now()),
        )
    cursor = db.execute(
        "INSERT INTO runs (case_id, user_id, gallery, evidence, options, status, created) "
        "VALUES (1, ?, 'demo', '[]', '{}', ?, ?)",
        (owner.id, status, now()),
    )
    return int(cursor.lastrowid)


def test_runs_left_unfinished_by_a_stopped_server_are_marked_interrupted(db):
    running = _insert_run(db, "running")
    finished = _insert_run(db, "finished")
    manager = RunManager(db, execute=lambda run_id, state: None, workers=1, queue_size=2)
    manager.start()
    manager.shutdown()
    rows = {r["id"]: r for r in db.all("SELECT id, status, error FROM runs")}
    assert rows[running]["status"] == "interrupted" and "server stopped" in rows[running]["error"]
    assert rows[finished]["status"] == "finished"


def test_the_queue_is_bounded_and_a_cancelled_queued_run_never_starts(db):
    started: list[int] = []
    ready = threading.Event()  # workers wait for it, so everything stays queued
    manager = RunManager(
        db, execute=lambda run_id, state: started.append(run_id), workers=1, queue_size=2
    )
    manager.start(ready=ready)
    first = manager.submit(lambda: _insert_run(db))
    second = manager.submit(lambda: _insert_run(db))
    with pytest.raises(QueueFull, match="queue is full"):
        manager.submit(lambda: _insert_run(db))
    assert manager.queue_position(second) == 2
    assert manager.cancel(first)
    ready.set()
    deadline = time.monotonic() + 10
    while manager.state(second) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    manager.shutdown()
    assert started == [second]
    status = db.one("SELECT status, error FROM runs WHERE id = ?", (first,))
    assert status["status"] == "cancelled" and "before it started" in status["error"]
    assert json.loads(db.one("SELECT options FROM runs WHERE id = ?", (second,))[0]) == {}


def test_a_choice_reaches_only_the_round_the_run_waits_on(db):
    from facefit.pipeline import Choice
    from facefit.serve.runs import RunState

    state = RunState(1)
    with pytest.raises(InputError, match="not waiting"):
        state.choose(0, Choice(pick=0))
    got: list = []
    worker = threading.Thread(target=lambda: got.append(state.wait_for_choice(0, 10)))
    worker.start()
    while state.awaiting is None:
        pass
    with pytest.raises(InputError, match="round 0, not round 1"):
        state.choose(1, Choice(pick=0))
    state.choose(0, Choice(pick=1, reject=(0,)))
    worker.join(5)
    assert got == [(Choice(pick=1, reject=(0,)), "investigator")]
    assert state.wait_for_choice(1, 0.05) == (None, "timeout")
    state.cancel()
    assert state.wait_for_choice(2, 5) == (None, "cancelled")


# -- the command line ---------------------------------------------------------------------


def test_facefit_users_adds_lists_disables_and_makes_tokens(tmp_path):
    from click.testing import CliRunner

    from facefit.cli import main

    runner = CliRunner()
    data = ["--data", str(tmp_path)]
    added = runner.invoke(
        main, ["users", "add", "carol", "--role", "admin", "--password-stdin", *data],
        input="carol-password-1\n",
    )  # fmt: skip
    assert added.exit_code == 0 and "added carol (admin)" in added.output
    short = runner.invoke(main, ["users", "add", "dave", "--password-stdin", *data], input="x\n")
    assert short.exit_code == 2 and "at least 10 characters" in short.output
    token = runner.invoke(main, ["users", "token", "carol", *data]).output.strip()
    assert token.startswith("ff_")
    assert runner.invoke(main, ["users", "disable", "carol", *data]).exit_code == 0
    listing = runner.invoke(main, ["users", "list", *data]).output
    assert re.search(r"carol\s+admin\s+disabled", listing)
    missing = runner.invoke(main, ["users", "disable", "nobody", *data])
    assert missing.exit_code == 2 and "no user 'nobody'" in missing.output
    db = Database(tmp_path / "facefit.sqlite3")
    assert Tokens(db).user(token) is None  # disabled
    actions = [e["action"] for e in AuditLog(db).entries()]
    assert actions == ["user.disable", "token.create", "user.add"]
    assert AuditLog(db).entries()[0]["user_name"].startswith("cli:")


def test_a_fresh_server_gets_one_admin_with_a_printed_password(tmp_path, capsys):
    from types import SimpleNamespace

    from facefit.cli.serve import _first_admin

    db = Database(tmp_path / "facefit.sqlite3")
    services = SimpleNamespace(users=Users(db), audit=AuditLog(db))
    _first_admin(services)
    password = re.search(r"made 'admin' with password (\S+)", capsys.readouterr().out).group(1)
    assert services.users.authenticate("admin", password).is_admin
    _first_admin(services)  # users exist: nothing more
    assert len(services.users.list()) == 1
    assert "no active admin" not in capsys.readouterr().out
    services.users.set_disabled("admin")
    services.users.add("erin", "erin-password-1")
    _first_admin(services)  # users but no active admin: a warning, no account made
    assert "no active admin account" in capsys.readouterr().out
    assert len(services.users.list()) == 2


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/cases/3", "/cases/3"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://x", "/"),
    ],
)
def test_logins_only_return_to_pages_of_this_server(target, safe):
    from facefit.serve.pages import _safe_next

    assert _safe_next(target) == safe
