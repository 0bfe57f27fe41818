"""What a page or an API answer shows of a run: one dict, built the same way for both."""

from __future__ import annotations

import json
from typing import Any

from facefit.serve.runs import loads
from facefit.serve.services import Services

__all__ = ["progress_text", "run_view", "stored_detail", "verdict"]

STAGE_WORDS = {
    "prepare": "preparing the evidence",
    "sample": "drawing candidates",
    "rank": "scoring candidates and searching the gallery",
    "done": "done",
}


def progress_text(progress: dict[str, Any] | None) -> str:
    """``"round 2 of 3 · drawing candidates · step 5 of 20"`` (rounds counted from 1)."""
    if not progress:
        return "starting"
    stage = progress["stage"]
    if stage == "prepare":
        return "preparing the evidence"
    if stage == "done":
        return f"done after {progress['round']} round(s)"
    text = (
        f"round {progress['round'] + 1} of {progress['rounds']} · {STAGE_WORDS.get(stage, stage)}"
    )
    if stage == "sample":
        text += f" · step {progress['step']} of {progress['steps']}"
    elif stage == "rank":
        text += f" · {progress['candidate']} of {progress['candidates']} candidates"
    return text


def _live_text(live: dict[str, Any]) -> str:
    if live["status"] == "waiting":
        return f"round {live['awaiting'] + 1} is ready: waiting for the investigator's choice"
    if live["status"] == "queued":
        return "waiting in the queue"
    if live["status"] == "cancelling":
        return "cancelling: stopping at the next step"
    return progress_text(live["progress"])


def verdict(matches: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Whether the top identity is a likely match, with the sentence that says why."""
    if not matches:
        return {
            "likely": False,
            "message": "No likely match: nothing was ranked (every candidate was rejected, "
            "or the run stopped before its first round ended).",
        }
    top = matches[0]
    if top.get("probability") is not None:
        likely = top["probability"] >= 0.5
        basis = f"calibrated probability {top['probability']:.2f} (threshold 0.5)"
    else:
        likely = top["score"] >= threshold
        basis = f"fused similarity {top['score']:.3f} (match threshold {threshold:.3f})"
    if likely:
        message = (
            f"Likely match: {top['identity']}, {basis}. A lead to verify, not an identification."
        )
    else:
        message = (
            f"No likely match: the best, {top['identity']}, has {basis}. "
            "The list below orders leads; none is close enough to name."
        )
    return {"likely": likely, "message": message}


def _rounds(svc: Services, run_id: int) -> list[dict[str, Any]]:
    rows = svc.db.all("SELECT * FROM rounds WHERE run_id = ? ORDER BY round", (run_id,))
    return [{**json.loads(r["trace"]), "choice": loads(r["choice"])} for r in rows]


def stored_detail(item: Any) -> dict[str, Any]:
    """The audit detail of a stored evidence item (with its face check, for an image)."""
    detail = {"evidence": item.id, "kind": item.kind, "witness": item.witness}
    if item.kind != "text":
        check = item.face_check
        detail["face"] = None if check is None else check.face
    return detail


def _caution(result: dict | None, options: dict) -> list[str]:
    """The notes of evidence used without a verified face (allowed by the run), if any."""
    if result is not None:
        return list(result.get("caution", []))
    return list(options.get("caution", []))


def run_view(svc: Services, row: Any, *, rounds: bool = True) -> dict[str, Any]:
    """A run as pages and the API show it (no server paths: images are blob checksums)."""
    run_id = int(row["id"])
    state = svc.runs.state(run_id)
    live = state.snapshot() if state is not None else None
    result = loads(row["result"])
    photos = loads(row["photos"], {})
    matches = [
        {
            "rank": m["rank"],
            "identity": m["identity"],
            "score": m["score"],
            **({"probability": m["probability"]} if "probability" in m else {}),
            "photo": photos.get(m["identity"]),
        }
        for m in (result["matches"] if result else [])
    ]
    status = live["status"] if live else row["status"]
    user = svc.users.by_id(int(row["user_id"]))
    view = {
        "id": run_id,
        "case_id": int(row["case_id"]),
        "started_by": user.name if user else None,
        "gallery": row["gallery"],
        "evidence": loads(row["evidence"], []),
        "options": loads(row["options"], {}),
        "status": status,
        "error": row["error"],
        "created": row["created"],
        "started": row["started"],
        "finished": row["finished"],
        "progress": live["progress"] if live else None,
        "progress_text": _live_text(live) if live else status,
        "awaiting_choice": live["awaiting"] if live else None,
        "queue_position": svc.runs.queue_position(run_id) if live else None,
        "stopped": result.get("stopped") if result else None,
        "caution": _caution(result, loads(row["options"], {})),
        "matches": matches,
        "verdict": verdict(matches, svc.settings.match_threshold) if result else None,
    }
    if rounds:
        view["rounds"] = _rounds(svc, run_id)
    return view
