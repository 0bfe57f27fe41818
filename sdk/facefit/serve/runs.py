"""Runs: a bounded queue, worker threads, live progress, the investigator's choices, cancel.

A run is queued by a request and executed by one of ``workers`` threads (never in
the request), against the shared pipeline of its gallery
(:mod:`.galleries`). While it runs, its :class:`RunState` holds the latest
:class:`~facefit.pipeline.Progress`; pages and API clients poll it. After each
round an interactive run waits — in its worker thread, never in a request — for
the investigator's :class:`~facefit.pipeline.Choice` (:meth:`RunManager.choose`),
for a cancel, or for ``choice_timeout`` seconds, after which the loop decides
itself. The queue holds at most ``queue_size`` waiting runs; past that a new run
is refused (HTTP 503) rather than kept waiting for ever.

Runs still queued or running when the server stops are marked ``interrupted``
when it starts again: none is lost silently.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import asdict
from typing import Any

from facefit.errors import FacefitError, InputError
from facefit.serve.db import Database, now

__all__ = ["ACTIVE", "QueueFull", "RunManager", "RunState"]

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running", "waiting")
"""Stored statuses of a run that has not ended (``finished``, ``cancelled``, ``failed``,
``interrupted``); a live run may also read ``cancelling``."""


class QueueFull(FacefitError):
    """The run queue is full: try again when a run has finished."""


class RunState:
    """The live side of one run: progress, the round awaiting a choice, its cancel token."""

    def __init__(self, run_id: int) -> None:
        from facefit.pipeline import CancelToken

        self.run_id = run_id
        self.token = CancelToken()
        self.status = "queued"
        self.progress: dict[str, Any] | None = None
        self.awaiting: int | None = None
        self._choice: Any = None
        self._cond = threading.Condition()

    def update(self, progress: Any) -> None:
        """The pipeline's progress callback (called in the worker thread)."""
        data = asdict(progress)
        data["fraction"] = round(float(progress.fraction), 4)
        with self._cond:
            self.progress = data

    def set_status(self, status: str) -> None:
        with self._cond:
            self.status = status

    def wait_for_choice(self, round_index: int, timeout: float) -> tuple[Any, str]:
        """Block the worker until a choice, a cancel or the timeout: (choice, how)."""
        with self._cond:
            self.awaiting, self._choice, self.status = round_index, None, "waiting"
            got = self._cond.wait_for(
                lambda: self._choice is not None or self.token.cancelled, timeout
            )
            choice, self._choice = self._choice, None
            self.awaiting = None
            self.status = "cancelling" if self.token.cancelled else "running"
        if self.token.cancelled:
            return None, "cancelled"
        return (choice, "investigator") if got else (None, "timeout")

    def choose(self, round_index: int, choice: Any) -> None:
        """Hand the investigator's choice to the waiting worker."""
        with self._cond:
            if self.awaiting is None:
                raise InputError(
                    f"run {self.run_id} is not waiting for a choice (status {self.status})"
                )
            if self.awaiting != round_index:
                raise InputError(
                    f"run {self.run_id} is waiting for a choice on round {self.awaiting}, "
                    f"not round {round_index}; reload the page"
                )
            choice.check(_candidates_of(self.progress))
            self._choice = choice
            self.awaiting, self.status = None, "running"  # a page rendered now shows it taken
            self._cond.notify_all()

    def cancel(self) -> None:
        """Ask the run to stop; it reads ``cancelling`` until the worker has stopped it."""
        self.token.cancel()
        with self._cond:
            self.awaiting, self.status = None, "cancelling"
            self._cond.notify_all()

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {"status": self.status, "progress": self.progress, "awaiting": self.awaiting}


def _candidates_of(progress: dict[str, Any] | None) -> int:
    return int(progress["candidates"]) if progress else 1 << 30


class RunManager:
    """Queues runs and executes them in worker threads (see the module doc)."""

    def __init__(self, db: Database, *, execute: Any, workers: int, queue_size: int) -> None:
        self.db = db
        self._execute = execute
        self._queue: queue.Queue[int | None] = queue.Queue()
        self.queue_size = queue_size
        self._states: dict[int, RunState] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._workers = workers
        self._ready = threading.Event()

    # -- life cycle ----------------------------------------------------------------------

    def start(self, ready: threading.Event | None = None) -> None:
        """Mark runs a previous server left unfinished, then start the workers.

        Workers take runs once ``ready`` is set (the pipelines are loaded).
        """
        placeholders = ", ".join("?" * len(ACTIVE))
        self.db.execute(
            f"UPDATE runs SET status = 'interrupted', finished = ?, "
            f"error = 'the server stopped before this run ended; start it again' "
            f"WHERE status IN ({placeholders})",
            (now(), *ACTIVE),
        )
        self._ready = ready or threading.Event()
        if ready is None:
            self._ready.set()
        for i in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"facefit-run-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel what runs, stop the workers."""
        with self._lock:
            states = list(self._states.values())
        for state in states:
            state.cancel()
        self._ready.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    # -- requests ------------------------------------------------------------------------

    def submit(self, insert: Any) -> int:
        """Queue a run: ``insert()`` writes its row and returns the id (under the queue lock)."""
        with self._lock:
            waiting = sum(1 for s in self._states.values() if s.status == "queued")
            if waiting >= self.queue_size:
                raise QueueFull(
                    f"the run queue is full ({waiting} runs waiting); "
                    "try again when a run has finished"
                )
            run_id = int(insert())
            self._states[run_id] = RunState(run_id)
        self._queue.put(run_id)
        return run_id

    def state(self, run_id: int) -> RunState | None:
        with self._lock:
            return self._states.get(run_id)

    def queue_position(self, run_id: int) -> int | None:
        """1 for the next run to start, None when the run is not queued."""
        with self._lock:
            queued = sorted(i for i, s in self._states.items() if s.status == "queued")
        return queued.index(run_id) + 1 if run_id in queued else None

    def cancel(self, run_id: int) -> bool:
        """Ask a run to stop; False when it is not active."""
        state = self.state(run_id)
        if state is None:
            return False
        state.cancel()
        return True

    def choose(self, run_id: int, round_index: int, choice: Any) -> None:
        state = self.state(run_id)
        if state is None:
            raise InputError(f"run {run_id} is not running; it cannot take a choice")
        state.choose(round_index, choice)

    # -- workers -------------------------------------------------------------------------

    def _work(self) -> None:
        self._ready.wait()
        while True:
            run_id = self._queue.get()
            if run_id is None:
                return
            state = self.state(run_id)
            try:
                if state is None:
                    continue
                if state.token.cancelled:
                    self._finish(run_id, "cancelled", "cancelled before it started")
                    continue
                state.set_status("running")
                self.db.execute(
                    "UPDATE runs SET status = 'running', started = ? WHERE id = ?",
                    (now(), run_id),
                )
                self._execute(run_id, state)
            except Exception as exc:  # a worker must survive any one run
                log.exception("run %s failed", run_id)
                self._finish(run_id, "failed", f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._states.pop(run_id, None)

    def _finish(self, run_id: int, status: str, error: str | None) -> None:
        self.db.execute(
            "UPDATE runs SET status = ?, error = ?, finished = ? WHERE id = ?",
            (status, error, now(), run_id),
        )


def loads(text: str | None, default: Any = None) -> Any:
    """JSON from a column that may be NULL."""
    return json.loads(text) if text else default
