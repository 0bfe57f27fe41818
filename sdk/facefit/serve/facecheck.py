"""Is there a face in an uploaded sketch or frame? The SDK's own evidence check, at upload.

``facefit generate`` judges every image before it generates
(:mod:`facefit.pipeline.evidence`): a face is detected and aligned, or the image
is refused with what to do, or — when the caller allows that kind without a
face (``--allow-no-face``) — it is used as given and flagged. The web app asks
the same question with the same code, :meth:`facefit.pipeline.Pipeline.prepare`
of a loaded pipeline (its detector and the generator's image size), at two moments:

- **at upload** the image is stored whatever the answer (evidence is never lost),
  and the verdict is kept in the ``evidence_checks`` table: the case page and the
  API's evidence JSON (``face_check``) show an image without a usable face as
  flagged, with the check's own words on what to do. An image uploaded while the
  models still load is checked the first time its case is shown after they are ready;
- **at run start** the chosen images are checked again with the run's
  ``allow_no_face``: a run on an image without a face is refused (HTTP 400) as the
  command line refuses it, unless the run allows that kind, when it goes on with
  the image flagged (``caution`` in the run, the report and ``result.json``).

The check's advice names the command line's ``--allow-no-face``; here it names
the run's option instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facefit.errors import InputError
from facefit.serve.db import Database, now
from facefit.serve.storage import BlobStore

__all__ = ["ALLOW_LABEL", "FaceCheck", "FaceChecks"]

log = logging.getLogger(__name__)

ALLOW_LABEL = "Use evidence without a verified face (flagged)"
"""The run form's option that is the command line's ``--allow-no-face``."""
IMAGE_KINDS = ("sketch", "lq")


@dataclass(frozen=True)
class FaceCheck:
    """The verdict on one image, as stored and shown."""

    face: bool
    """True when a face was detected (or the crop is aligned): the image is usable."""
    use: str
    """The SDK's use: ``detected``, ``aligned``, ``as given`` (allowed, flagged) or
    ``refused`` (no usable face)."""
    detector_score: float | None
    why: str
    """What was found and, for a refusal, what to do (the SDK's words)."""
    checked: str = ""

    @property
    def flagged(self) -> bool:
        return not self.face

    def to_dict(self) -> dict[str, Any]:
        score = None if self.detector_score is None else round(float(self.detector_score), 4)
        return {
            "face": self.face,
            "flagged": self.flagged,
            "use": self.use,
            "detector_score": score,
            "why": self.why,
            "checked": self.checked,
        }


def web_advice(message: str, kind: str) -> str:
    """The SDK's refusal, its ``--allow-no-face`` hint put as the run's option."""
    from facefit.pipeline.evidence import ALLOW_HINT

    return message.replace(
        ALLOW_HINT.format(m=kind),
        f'the run option "{ALLOW_LABEL}" (API: "allow_no_face": ["{kind}"])',
    )


class FaceChecks:
    """Face checks of image evidence with a loaded pipeline's :meth:`prepare`.

    ``pipeline`` returns a loaded pipeline, or None while the models load (or
    when they failed to load): no check is made then.
    """

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        pipeline: Callable[[], Any],
        *,
        max_pixels: int,
    ) -> None:
        self.db, self.blobs, self.pipeline, self.max_pixels = db, blobs, pipeline, max_pixels

    def judge(
        self, kind: str, image: Any, source: str, allow: tuple[str, ...] = ()
    ) -> FaceCheck | None:
        """The SDK's verdict on ``image`` as evidence of ``kind``; None without a pipeline."""
        from facefit.types import Evidence

        pipeline = self.pipeline()
        if pipeline is None:
            return None
        allow = tuple(a for a in allow if a == kind)
        try:
            evidence = Evidence(**{kind: image}, sources={kind: source}, allow_no_face=allow)
            check = pipeline.prepare(evidence).checks[0]
        except InputError as exc:
            return FaceCheck(False, "refused", None, web_advice(str(exc), kind), now())
        return FaceCheck(not check.flagged, check.use, check.detector_score, check.why, now())

    def _load(self, item: Any) -> Any:
        from facefit.imaging.images import load_image

        return load_image(self.blobs.path(item.sha256), max_pixels=self.max_pixels)

    def check(self, item: Any, allow: tuple[str, ...] = ()) -> FaceCheck | None:
        """Judge a stored image item (sketch or frame); None for text or without a pipeline."""
        if item.kind not in IMAGE_KINDS:
            return None
        return self.judge(item.kind, self._load(item), item.filename, allow)

    def store(self, item: Any) -> FaceCheck | None:
        """Judge an item without allowances and keep the verdict (None: not checked yet)."""
        try:
            verdict = self.check(item)
        except InputError as exc:  # the stored file no longer reads: say so, do not crash
            verdict = FaceCheck(False, "refused", None, str(exc), now())
        except Exception:  # a detector failure must not lose the upload
            log.exception("face check of evidence %s failed", item.id)
            return None
        if verdict is not None:
            self.db.execute(
                "INSERT OR REPLACE INTO evidence_checks "
                "(evidence_id, face, use, detector_score, why, checked) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    item.id,
                    int(verdict.face),
                    verdict.use,
                    verdict.detector_score,
                    verdict.why,
                    verdict.checked,
                ),
            )
        return verdict

    def fill(self, items: list[Any]) -> bool:
        """Check the image items not checked yet (when a pipeline is loaded); True if any was."""
        missing = [i for i in items if i.kind in IMAGE_KINDS and i.face_check is None]
        if not missing or self.pipeline() is None:
            return False
        return any([self.store(item) is not None for item in missing])


def from_row(row: Any) -> FaceCheck | None:
    """The stored verdict of an evidence row joined with ``evidence_checks`` (None: none)."""
    if row["check_face"] is None:
        return None
    return FaceCheck(
        bool(row["check_face"]),
        row["check_use"],
        row["check_score"],
        row["check_why"],
        row["check_at"],
    )
