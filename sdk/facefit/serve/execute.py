"""Executing one run in a worker thread: evidence in, rounds, choices and a result stored.

This is the only place that calls :meth:`facefit.pipeline.Pipeline.run`. Each
round's candidates are stored as PNG blobs and its trace in the ``rounds`` table
as soon as the round ends (so the page can show them while the run waits for the
investigator); the finished run stores ``result.json`` and ``provenance.json`` as
the CLI writes them (:func:`~facefit.pipeline.output.result_to_dict`,
:func:`~facefit.pipeline.provenance.make_provenance`), and the top identities'
gallery photos as blobs, so a report shows what the investigator saw even if the
gallery changes later.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from facefit.errors import FacefitError
from facefit.serve.db import Database, now
from facefit.serve.galleries import Galleries
from facefit.serve.runs import RunState, loads
from facefit.serve.settings import ServeSettings
from facefit.serve.storage import BlobStore

__all__ = ["RunExecutor", "trace_to_dict"]

log = logging.getLogger(__name__)
ROUND_MATCHES = 3
"""Gallery identities shown under each candidate."""


def _match(m: Any) -> dict[str, Any]:
    out = {"rank": m.rank, "identity": m.identity, "score": round(float(m.score), 6)}
    probability = getattr(m, "probability", None)
    if probability is not None:
        out["probability"] = round(float(probability), 6)
    return out


def trace_to_dict(trace: Any, images: list[str]) -> dict[str, Any]:
    """One round as stored: candidates (with their image blobs), ranking, notes."""
    return {
        "round": trace.round,
        "reference": trace.reference,
        "notes": list(trace.notes),
        "seconds": round(float(trace.seconds), 3),
        "matches": [_match(m) for m in trace.matches],
        "candidates": [
            {
                "index": c.index,
                "image": images[i],
                "seed": c.seed,
                "rejected": bool(c.rejected),
                "consistency": round(float(c.consistency), 4),
                "evidence_scores": {k: round(float(v), 4) for k, v in c.evidence_scores.items()},
                "matches": [_match(m) for m in c.matches[:ROUND_MATCHES]],
            }
            for i, c in enumerate(trace.candidates)
        ],
    }


class RunExecutor:
    """Called by a :class:`~facefit.serve.runs.RunManager` worker with (run id, state)."""

    def __init__(
        self, db: Database, blobs: BlobStore, galleries: Galleries, settings: ServeSettings
    ) -> None:
        self.db, self.blobs, self.galleries, self.settings = db, blobs, galleries, settings

    def __call__(self, run_id: int, state: RunState) -> None:
        from facefit.pipeline import Cancelled

        row = self.db.one("SELECT * FROM runs WHERE id = ?", (run_id,))
        options = loads(row["options"], {})
        pipeline = self.galleries.pipeline(row["gallery"])
        allow = tuple(options.get("allow_no_face", ()))
        evidence, inputs, text = self._evidence(loads(row["evidence"], []), allow)
        start = time.perf_counter()
        try:
            result = pipeline.run(
                evidence,
                progress=state.update,
                cancel=state.token,
                on_round=self._on_round(run_id, state, options),
                rounds=int(options.get("rounds", self.settings.rounds)),
            )
        except Cancelled as stop:
            self._store(run_id, pipeline, stop.result, inputs, text, start, "cancelled", str(stop))
            return
        except FacefitError as exc:  # bad evidence (no face found …): the user's to fix
            self._store(run_id, pipeline, None, inputs, text, start, "failed", str(exc))
            return
        self._store(run_id, pipeline, result, inputs, text, start, "finished", None)

    def _evidence(
        self, ids: list[int], allow: tuple[str, ...] = ()
    ) -> tuple[Any, dict[str, str], str | None]:
        from facefit.imaging.images import load_image
        from facefit.types import Evidence

        images: dict[str, Any] = {}
        inputs: dict[str, str] = {}
        text = None
        for item_id in ids:
            row = self.db.one("SELECT kind, sha256 FROM evidence WHERE id = ?", (item_id,))
            path = self.blobs.path(row["sha256"])
            if row["kind"] == "text":
                text = path.read_text(encoding="utf-8")
            else:
                images[row["kind"]] = load_image(path, max_pixels=self.settings.max_pixels)
                inputs[row["kind"]] = str(path)
        evidence = Evidence(text=text, sources=inputs, allow_no_face=allow, **images)
        return evidence.require_any(), inputs, text

    def _on_round(self, run_id: int, state: RunState, options: dict[str, Any]) -> Any:
        from facefit.pipeline import Cancelled

        interactive = bool(options.get("interactive", True))

        def on_round(trace: Any) -> Any:
            images = [self.blobs.put_png(c.image) for c in trace.candidates]
            self.db.execute(
                "INSERT OR REPLACE INTO rounds (run_id, round, trace) VALUES (?, ?, ?)",
                (run_id, trace.round, json.dumps(trace_to_dict(trace, images))),
            )
            if not interactive:
                return None
            choice, decided_by = state.wait_for_choice(trace.round, self.settings.choice_timeout)
            if decided_by == "cancelled":
                raise Cancelled(f"run cancelled while waiting for a choice on round {trace.round}")
            record = {"by": decided_by, **(choice.to_dict() if choice is not None else {})}
            if decided_by == "timeout":
                record["note"] = (
                    f"no choice within {self.settings.choice_timeout:g} s: the loop decided"
                )
            self.db.execute(
                "UPDATE rounds SET choice = ? WHERE run_id = ? AND round = ?",
                (json.dumps(record), run_id, trace.round),
            )
            return choice

        return on_round

    def _store(
        self,
        run_id: int,
        pipeline: Any,
        result: Any,
        inputs: dict[str, str],
        text: str | None,
        start: float,
        status: str,
        error: str | None,
    ) -> None:
        from facefit.pipeline.output import result_to_dict
        from facefit.pipeline.provenance import make_provenance

        result_json = provenance_json = photos_json = None
        if result is not None:
            for trace in result.rounds:  # final traces: rejections and notes applied
                images = [self.blobs.put_png(c.image) for c in trace.candidates]
                self.db.execute(
                    "UPDATE rounds SET trace = ? WHERE run_id = ? AND round = ?",
                    (json.dumps(trace_to_dict(trace, images)), run_id, trace.round),
                )
            seconds = {"loop": round(time.perf_counter() - start, 4)}
            provenance = make_provenance(
                pipeline,
                result,
                inputs=inputs,
                text=text,
                seconds=seconds,
                command=["serve", "run", str(run_id)],
            )
            result_json = json.dumps(result_to_dict(result))
            provenance_json = json.dumps(provenance)
            photos_json = json.dumps(self._photos(result, pipeline.settings.top_k))
        self.db.execute(
            "UPDATE runs SET status = ?, error = ?, finished = ?, result = ?, provenance = ?, "
            "photos = ? WHERE id = ?",
            (status, error, now(), result_json, provenance_json, photos_json, run_id),
        )
        log.info("run %s %s", run_id, status)

    def _photos(self, result: Any, k: int) -> dict[str, str]:
        """Identity → blob of its gallery photo, for the ranked identities whose photo is readable."""
        from pathlib import Path

        from facefit.errors import InputError
        from facefit.imaging.images import load_image

        photos = {}
        for match in result.top(k):
            if match.image_id and Path(match.image_id).is_file():
                try:
                    photos[match.identity] = self.blobs.put_png(load_image(match.image_id))
                except InputError:
                    continue
        return photos
