"""Everything one server holds, made once by :func:`open_services` and kept on ``app.state``.

No module-level state: tests make as many servers as they like, each with its
own data folder.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from facefit.errors import InputError
from facefit.serve.audit import AuditLog
from facefit.serve.auth import Sessions, Tokens, User, Users
from facefit.serve.cases import Case, Cases, EvidenceItem
from facefit.serve.db import Database, now
from facefit.serve.execute import RunExecutor
from facefit.serve.facecheck import IMAGE_KINDS, FaceChecks
from facefit.serve.galleries import Galleries
from facefit.serve.runs import RunManager
from facefit.serve.settings import ServeSettings
from facefit.serve.storage import BlobStore
from facefit.serve.throttle import LoginThrottle, Refusal

__all__ = ["Services", "open_services"]


@dataclass
class Services:
    settings: ServeSettings
    db: Database
    users: Users
    sessions: Sessions
    tokens: Tokens
    audit: AuditLog
    blobs: BlobStore
    cases: Cases
    galleries: Galleries
    runs: RunManager
    ready: threading.Event
    throttle: LoginThrottle
    load_error: str | None = None
    face_checks: FaceChecks = field(init=False)

    def __post_init__(self) -> None:
        self.face_checks = FaceChecks(
            self.db, self.blobs, self.checking_pipeline, max_pixels=self.settings.max_pixels
        )

    def checking_pipeline(self) -> Any:
        """A loaded pipeline for face checks, or None while the models load (or failed to)."""
        if not self.ready.is_set() or self.load_error is not None:
            return None
        try:
            return self.galleries.pipeline(self.galleries.names[0])
        except Exception:
            return None

    def add_image(
        self, case: Case, user: User, witness: str, kind: str, data: bytes, filename: str
    ) -> EvidenceItem:
        """Validate and store an image, then check it for a face (stored either way)."""
        item = self.cases.add_image(case, user, witness, kind, data, filename)
        if self.face_checks.store(item) is None:
            return item
        return self.cases.evidence_item(item.id) or item

    def case_evidence(self, case: Case) -> list[EvidenceItem]:
        """A case's evidence, images uploaded while the models loaded checked now."""
        items = self.cases.evidence(case)
        if self.face_checks.fill(items):
            items = self.cases.evidence(case)
        return items

    def login(self, name: str, password: str, ip: str | None, action: str) -> User | Refusal | None:
        """Check a password under the login throttle; audit the outcome unless it is ok.

        Returns the user (the caller audits the login), a :class:`Refusal` (too many
        failures for the name or address: the password was not checked; audited as
        ``refused``) or None (wrong name, password or disabled account; audited as
        ``denied``).
        """
        target = (name or "")[:64]
        attempt = self.throttle.begin(name, ip)
        if isinstance(attempt, Refusal):
            self.audit.record(
                None,
                action,
                target=target,
                outcome="refused",
                detail={
                    "throttled": attempt.reason,
                    "failures": attempt.failures,
                    "until": attempt.until_text,
                },
                ip=ip,
            )
            return attempt
        user = self.users.authenticate((name or "").strip(), password)
        if user is None:
            failures = self.throttle.failures(name=name)
            self.audit.record(
                None, action, target=target, outcome="denied", detail={"failures": failures}, ip=ip
            )
            return None
        self.throttle.succeeded(attempt)
        return user

    def unlock(self, admin: User, kind: str, value: str, ip: str | None) -> int:
        """An admin lifts the login throttle's lock on a user name or an address (audited).

        Returns how many recorded attempts were forgotten (0: nothing was locked)."""
        value = (value or "").strip()
        if kind not in ("name", "address") or not value:
            raise InputError("unlock: give a user name or an address")
        forgotten = self.throttle.unlock(**{kind: value})
        self.audit.record(
            admin,
            "login.unlock",
            target=value[:64],
            detail={"kind": kind, "attempts": forgotten},
            ip=ip,
        )
        return forgotten

    def revoke_token(self, user: User, token_id: int, ip: str | None) -> dict[str, Any] | None:
        """Revoke one of ``user``'s API tokens (audited); it stops working at once.

        Returns the revoked token's record, or None when ``user`` has no such token."""
        revoked = self.tokens.revoke_id(user, token_id)
        self.audit.record(
            user,
            "token.revoke",
            target=str(token_id),
            outcome="ok" if revoked else "denied",
            detail={"label": revoked["label"]} if revoked else None,
            ip=ip,
        )
        return revoked

    def start_run(
        self,
        case: Case,
        user: User,
        gallery: str,
        items: list[EvidenceItem],
        *,
        rounds: int | None = None,
        interactive: bool = True,
        allow_no_face: tuple[str, ...] | list[str] = (),
    ) -> int:
        """Check a run request and queue it; return the run's id.

        Images without a usable face are refused as ``facefit generate`` refuses them,
        unless ``allow_no_face`` names their kind: then the run goes on, flagged.
        """
        if gallery not in self.galleries.names:
            raise InputError(
                f"gallery {gallery!r}: not served here; known: {', '.join(self.galleries.names)}"
            )
        if not items:
            raise InputError("a run needs evidence: choose a sketch, a frame or a description")
        kinds = [i.kind for i in items]
        if len(set(kinds)) != len(kinds):
            raise InputError("choose at most one sketch, one frame and one description per run")
        if any(i.case_id != case.id for i in items):
            raise InputError(f"evidence must belong to case {case.id}")
        witnesses = {i.witness for i in items}
        if len(witnesses) > 1:
            raise InputError(
                f"evidence of one witness per run (got {', '.join(sorted(witnesses))}): "
                "each witness's memory is run separately"
            )
        rounds = self.settings.rounds if rounds is None else int(rounds)
        if not 1 <= rounds <= self.settings.rounds:
            raise InputError(f"rounds: choose 1 to {self.settings.rounds}")
        allow = tuple(dict.fromkeys(allow_no_face or ()))
        unknown = [a for a in allow if a not in IMAGE_KINDS]
        if unknown:
            raise InputError(
                f"allow_no_face: {', '.join(map(repr, unknown))}; give any of "
                f"{', '.join(IMAGE_KINDS)}"
            )
        options: dict[str, Any] = {"rounds": rounds, "interactive": bool(interactive)}
        if allow:
            options["allow_no_face"] = list(allow)
        caution = self._check_faces(items, allow)
        if caution:
            options["caution"] = caution

        def insert() -> int:
            cursor = self.db.execute(
                "INSERT INTO runs (case_id, user_id, gallery, evidence, options, status, created) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                (
                    case.id,
                    user.id,
                    gallery,
                    json.dumps([i.id for i in items]),
                    json.dumps(options),
                    now(),
                ),
            )
            return int(cursor.lastrowid)

        return self.runs.submit(insert)

    def _check_faces(self, items: list[EvidenceItem], allow: tuple[str, ...]) -> list[str]:
        """Refuse images the SDK refuses; the CAUTION notes of those used as given.

        While the models load nothing is checked here: the run checks when it executes
        (and fails with the same message).
        """
        from facefit.pipeline.evidence import FLAG

        caution = []
        for item in items:
            verdict = self.face_checks.check(item, allow)
            if verdict is None:
                continue
            if verdict.use == "refused":
                raise InputError(f"evidence #{item.id} ({item.label}): {verdict.why}")
            if verdict.flagged:
                caution.append(f"{item.kind}: {FLAG} {verdict.why}")
        return caution

    def close(self) -> None:
        self.runs.shutdown()
        self.db.close()


def open_services(settings: ServeSettings, *, registry: Any = None) -> Services:
    """Open the data folder and create every part (models load later, see :func:`load_models`)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database)
    blobs = BlobStore(settings.blob_dir)
    galleries = Galleries(settings, registry=registry)
    runs = RunManager(
        db,
        execute=RunExecutor(db, blobs, galleries, settings),
        workers=settings.workers,
        queue_size=settings.queue_size,
    )
    return Services(
        settings=settings,
        db=db,
        users=Users(db),
        sessions=Sessions(db, settings.session_hours),
        tokens=Tokens(db),
        audit=AuditLog(db),
        blobs=blobs,
        cases=Cases(db, blobs, max_pixels=settings.max_pixels),
        galleries=galleries,
        runs=runs,
        ready=threading.Event(),
        throttle=LoginThrottle(
            db,
            max_per_name=settings.login_failures,
            max_per_address=settings.login_failures_per_address,
            window=settings.login_window,
            cooldown=settings.login_cooldown,
        ),
    )
