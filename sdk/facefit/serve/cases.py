"""Cases, who may see them, and the evidence in them.

A case belongs to the investigator who opened it; its owner may share it with
other users. An investigator sees their own cases and those shared with them; an
admin sees every case. Evidence is added per witness: sketches and low-quality
frames (validated images) and descriptions (text), each stored content-addressed
in the :class:`~facefit.serve.storage.BlobStore` and listed in the ``evidence``
table. Evidence is never edited or deleted: a correction is a new item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facefit.errors import InputError
from facefit.serve.auth import User
from facefit.serve.db import Database, now
from facefit.serve.facecheck import FaceCheck, from_row
from facefit.serve.storage import BlobStore, check_image, check_text

__all__ = ["KINDS", "Case", "Cases", "EvidenceItem"]

KINDS = {"sketch": "sketch", "lq": "low-quality frame", "text": "description"}
MAX_TITLE = 200


@dataclass(frozen=True)
class Case:
    id: int
    title: str
    reference: str
    owner_id: int
    owner: str
    created: str
    shared_with: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "reference": self.reference,
            "owner": self.owner,
            "created": self.created,
            "shared_with": list(self.shared_with),
        }


@dataclass(frozen=True)
class EvidenceItem:
    id: int
    case_id: int
    witness: str
    kind: str
    sha256: str
    filename: str
    media_type: str
    size: int
    width: int | None
    height: int | None
    added_by: str
    created: str
    text: str | None = None
    face_check: FaceCheck | None = None
    """The face check of a sketch or frame (:mod:`.facecheck`); None: text, or not checked yet."""

    @property
    def label(self) -> str:
        return KINDS[self.kind]

    @property
    def flagged(self) -> bool:
        """An image in which the face check found no usable face."""
        return self.face_check is not None and self.face_check.flagged

    def to_dict(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "id",
                "witness",
                "kind",
                "sha256",
                "filename",
                "media_type",
                "size",
                "width",
                "height",
                "added_by",
                "created",
            )
        }
        if self.text is not None:
            out["text"] = self.text
        else:  # null: not checked yet (the models are loading)
            out["face_check"] = self.face_check.to_dict() if self.face_check else None
        return out


def _check_title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise InputError("case title: empty; give the case a name")
    if len(title) > MAX_TITLE:
        raise InputError(f"case title: keep it under {MAX_TITLE} characters")
    return title


def _check_witness(witness: str) -> str:
    witness = " ".join((witness or "").split())
    if not witness:
        raise InputError("witness: empty; name the witness (e.g. 'W1' or their initials)")
    if len(witness) > 100:
        raise InputError("witness: keep the name under 100 characters")
    return witness


class Cases:
    """The ``cases``, ``case_shares`` and ``evidence`` tables."""

    def __init__(self, db: Database, blobs: BlobStore, *, max_pixels: int) -> None:
        self.db = db
        self.blobs = blobs
        self.max_pixels = max_pixels

    # -- cases ---------------------------------------------------------------------------

    def create(self, owner: User, title: str, reference: str = "") -> Case:
        cursor = self.db.execute(
            "INSERT INTO cases (title, reference, owner_id, created) VALUES (?, ?, ?, ?)",
            (_check_title(title), " ".join((reference or "").split())[:100], owner.id, now()),
        )
        case = self.get(int(cursor.lastrowid))
        assert case is not None
        return case

    def get(self, case_id: int) -> Case | None:
        row = self.db.one(
            "SELECT c.*, u.name AS owner FROM cases c JOIN users u ON u.id = c.owner_id "
            "WHERE c.id = ?",
            (case_id,),
        )
        if row is None:
            return None
        shared = self.db.all(
            "SELECT u.name FROM case_shares s JOIN users u ON u.id = s.user_id "
            "WHERE s.case_id = ? ORDER BY u.name",
            (case_id,),
        )
        return Case(
            int(row["id"]),
            row["title"],
            row["reference"],
            int(row["owner_id"]),
            row["owner"],
            row["created"],
            tuple(r["name"] for r in shared),
        )

    def may_see(self, user: User, case: Case) -> bool:
        """Owner, a user it is shared with, or an admin."""
        return user.is_admin or case.owner_id == user.id or user.name in case.shared_with

    def visible(self, user: User, search: str | None = None) -> list[Case]:
        """The cases ``user`` may see, newest first, optionally filtered by title/reference."""
        sql = (
            "SELECT c.id FROM cases c WHERE (? OR c.owner_id = ? OR c.id IN "
            "(SELECT case_id FROM case_shares WHERE user_id = ?))"
        )
        params: list[Any] = [int(user.is_admin), user.id, user.id]
        if search:
            sql += " AND (c.title LIKE ? OR c.reference LIKE ?)"
            params += [f"%{search}%", f"%{search}%"]
        rows = self.db.all(sql + " ORDER BY c.id DESC", tuple(params))
        return [case for r in rows if (case := self.get(int(r["id"]))) is not None]

    def share(self, case: Case, user: User) -> None:
        if user.id == case.owner_id:
            raise InputError(f"case {case.id}: {user.name} owns it already")
        self.db.execute(
            "INSERT OR IGNORE INTO case_shares (case_id, user_id) VALUES (?, ?)",
            (case.id, user.id),
        )

    # -- evidence ------------------------------------------------------------------------

    def add_image(
        self, case: Case, by: User, witness: str, kind: str, data: bytes, filename: str
    ) -> EvidenceItem:
        """Validate and store a sketch or low-quality frame."""
        if kind not in ("sketch", "lq"):
            raise InputError(f"evidence kind {kind!r}: images are 'sketch' or 'lq'")
        witness = _check_witness(witness)
        checked = check_image(data, filename or "upload", max_pixels=self.max_pixels)
        sha256 = self.blobs.put(data)
        height, width = checked.image.shape[:2]
        return self._insert(
            case, by, witness, kind, sha256, filename, checked.media_type, len(data), width, height
        )

    def add_text(self, case: Case, by: User, witness: str, text: str) -> EvidenceItem:
        """Store a witness's description."""
        witness = _check_witness(witness)
        data = check_text(text).encode("utf-8")
        sha256 = self.blobs.put(data)
        return self._insert(
            case,
            by,
            witness,
            "text",
            sha256,
            "description.txt",
            "text/plain",
            len(data),
            None,
            None,
        )

    def _insert(self, case: Case, by: User, *values: Any) -> EvidenceItem:
        witness, kind, sha256, filename, media_type, size, width, height = values
        name = (filename or "upload").replace("/", "_")[-120:]
        cursor = self.db.execute(
            "INSERT INTO evidence (case_id, witness, kind, sha256, filename, media_type, size, "
            "width, height, added_by, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (case.id, witness, kind, sha256, name, media_type, size, width, height, by.id, now()),
        )
        item = self.evidence_item(int(cursor.lastrowid))
        assert item is not None
        return item

    def _item(self, row: Any) -> EvidenceItem:
        text = self.blobs.read(row["sha256"]).decode("utf-8") if row["kind"] == "text" else None
        return EvidenceItem(
            int(row["id"]),
            int(row["case_id"]),
            row["witness"],
            row["kind"],
            row["sha256"],
            row["filename"],
            row["media_type"],
            int(row["size"]),
            row["width"],
            row["height"],
            row["added_by_name"],
            row["created"],
            text,
            from_row(row),
        )

    _SELECT = (
        "SELECT e.*, u.name AS added_by_name, k.face AS check_face, k.use AS check_use, "
        "k.detector_score AS check_score, k.why AS check_why, k.checked AS check_at "
        "FROM evidence e JOIN users u ON u.id = e.added_by "
        "LEFT JOIN evidence_checks k ON k.evidence_id = e.id "
    )

    def evidence(self, case: Case) -> list[EvidenceItem]:
        rows = self.db.all(self._SELECT + "WHERE e.case_id = ? ORDER BY e.id", (case.id,))
        return [self._item(r) for r in rows]

    def evidence_item(self, item_id: int) -> EvidenceItem | None:
        row = self.db.one(self._SELECT + "WHERE e.id = ?", (item_id,))
        return self._item(row) if row else None

    def witnesses(self, case: Case) -> list[str]:
        rows = self.db.all(
            "SELECT DISTINCT witness FROM evidence WHERE case_id = ? ORDER BY witness", (case.id,)
        )
        return [r["witness"] for r in rows]
