"""Progress reports and cancellation of a pipeline run.

    >>> from facefit.pipeline import CancelToken, Cancelled, Progress
    >>> token = CancelToken()
    >>> def show(p: Progress) -> None:
    ...     print(p.stage, p.round, p.step, f"{p.fraction:.0%}")
    >>> try:
    ...     result = pipeline.run(evidence, progress=show, cancel=token)
    ... except Cancelled as stop:
    ...     result = stop.result          # the rounds completed before the cancel

:meth:`Pipeline.run <facefit.pipeline.Pipeline.run>` calls the ``progress``
callback in the thread that runs the loop: once when it starts preparing the
evidence, before and after every sampler step, when a round's candidates are
ranked (as ranking starts and when it ends), and when it is done. A
:class:`CancelToken` is checked at each of those
points, so a cancelled run stops within one sampler step. The callback may also
raise :class:`Cancelled` itself to stop the run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from facefit.errors import FacefitError

if TYPE_CHECKING:
    from facefit.types import Result

__all__ = [
    "STAGES",
    "CancelToken",
    "Cancelled",
    "Progress",
    "ProgressBar",
    "ProgressCallback",
    "ProgressLog",
    "progress_to",
]

STAGES = ("prepare", "sample", "rank", "done")
"""The stages a run reports, in order (``sample`` and ``rank`` once per round)."""


@dataclass(frozen=True)
class Progress:
    """Where a run is: its stage, round, and sampler step.

    Rounds count from 0, like :attr:`RoundTrace.round <facefit.types.RoundTrace.round>`.
    The candidates of a round are sampled together in one batch, so ``candidate``
    counts the candidates of the current round that are finished: 0 while they are
    sampled and while ranking starts, ``candidates`` once they are ranked.
    """

    stage: str
    """``"prepare"`` (framing and encoding the evidence), ``"sample"`` (the sampler's
    steps), ``"rank"`` (scoring candidates and searching the gallery) or ``"done"``."""
    round: int
    """The round in progress (0-based); at ``"done"``, the last round run."""
    rounds: int
    """Most rounds this run may take (it can stop earlier; at ``"done"``: the rounds run)."""
    candidate: int
    """Candidates of this round finished so far."""
    candidates: int
    """Candidates per round."""
    step: int
    """Sampler steps of this round done so far (0 before the first)."""
    steps: int
    """Sampler steps per round."""

    @property
    def fraction(self) -> float:
        """Share of the run's sampler steps done, in [0, 1] (1 at ``"done"``)."""
        if self.stage == "done":
            return 1.0
        total = max(self.rounds * self.steps, 1)
        step = self.steps if self.stage == "rank" else self.step
        return min((self.round * self.steps + step) / total, 1.0)


ProgressCallback = Callable[[Progress], Any]
"""What ``progress=`` takes: called with each :class:`Progress`; its return value is ignored."""


class Cancelled(FacefitError):
    """A run was cancelled; :attr:`result` holds the rounds completed before it stopped.

    ``result.provenance["stopped"]`` says where it stopped. ``result.rounds`` may be
    empty (cancelled before the first round finished); ``result.matches`` ranks the
    identities over the completed rounds only.
    """

    def __init__(self, message: str = "run cancelled", result: Result | None = None) -> None:
        super().__init__(message)
        self.result = result


class CancelToken:
    """Asks a running pipeline to stop; safe to share between threads.

    Call :meth:`cancel` from any thread (a web request, a signal handler); the run
    holding the token raises :class:`Cancelled` at its next check, within one
    sampler step. A token stays cancelled: use a new one for the next run. One
    token may be given to several runs to stop them all.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask every run holding this token to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` has been called."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` seconds pass; return :attr:`cancelled`."""
        return self._event.wait(timeout)

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"


class ProgressBar:
    """A tqdm progress bar fed by :class:`Progress` (what ``facefit generate`` shows).

    ``pipeline.run(evidence, progress=ProgressBar())``: one bar over the run's
    sampler steps, with the round and stage beside it; it closes at ``"done"``
    (call :meth:`close` after a cancelled or failed run). ``disable=True`` shows nothing.
    """

    def __init__(self, desc: str = "generating", *, disable: bool = False, **tqdm_options: Any):
        self.desc, self.disable, self.options = desc, disable, tqdm_options
        self.bar: Any = None

    def __call__(self, progress: Progress) -> None:
        if self.bar is None:
            if progress.stage == "prepare":  # a run refused while preparing shows no bar
                return
            from tqdm import tqdm

            total = progress.rounds * progress.steps
            self.bar = tqdm(
                total=total, desc=self.desc, unit="step", disable=self.disable, **self.options
            )
        bar = self.bar
        bar.set_postfix_str(
            f"round {progress.round + 1}/{progress.rounds} {progress.stage}", refresh=False
        )
        bar.update(round(progress.fraction * bar.total) - bar.n)
        if progress.stage == "done":
            bar.close()
            self.bar = None

    def close(self) -> None:
        """Remove an unfinished bar (after a cancelled or failed run); safe to call twice."""
        if self.bar is not None:
            self.bar.leave = False
            self.bar.close()
            self.bar = None


class ProgressLog:
    """Log lines fed by :class:`Progress`: each stage at INFO, each sampler step at DEBUG.

    What ``facefit -v generate`` prints (``-vv`` adds the steps), beside or instead of
    a :class:`ProgressBar`. ``prefix`` starts every line (a batch gives the probe's id).
    """

    def __init__(self, prefix: str = "", logger: logging.Logger | None = None) -> None:
        self.prefix = prefix
        self.log = logger or logging.getLogger("facefit.pipeline.run")
        self._last: tuple[str, int, int, bool] | None = None

    def __call__(self, progress: Progress) -> None:
        p = progress
        where = f"{self.prefix}round {p.round + 1}/{p.rounds}"
        if p.stage == "sample" and p.step > 0:
            self.log.debug("%s: sampler step %d/%d", where, p.step, p.steps)
            return
        key = (p.stage, p.round, p.candidate, p.stage == "rank" and p.candidate == p.candidates)
        if key == self._last:
            return
        self._last = key
        if p.stage == "prepare":
            self.log.info("%sjudging and encoding the evidence", self.prefix)
        elif p.stage == "sample":
            self.log.info("%s: sampling %d candidate(s), %d step(s)", where, p.candidates, p.steps)
        elif p.stage == "rank" and p.candidate < p.candidates:
            self.log.info("%s: scoring the candidates and searching the gallery", where)
        elif p.stage == "rank":
            self.log.info("%s: done", where)
        else:
            self.log.info("%srun done after %d round(s)", self.prefix, p.rounds)


def progress_to(*callbacks: ProgressCallback | None) -> ProgressCallback | None:
    """One callback that calls each given one in turn (None when none is given)."""
    given = [c for c in callbacks if c is not None]
    if not given:
        return None

    def each(progress: Progress) -> None:
        for callback in given:
            callback(progress)

    return each


class Reporter:
    """The pipeline's side: sends :class:`Progress` and checks the token at each point."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        token: CancelToken | None,
        *,
        rounds: int,
        candidates: int,
        steps: int,
    ) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"progress must be a callable taking a Progress, got {callback!r}")
        if token is not None and not isinstance(token, CancelToken):
            raise TypeError(
                f"cancel must be a facefit.pipeline.CancelToken, got {type(token).__name__}"
            )
        self.callback, self.token = callback, token
        self.rounds, self.candidates, self.steps = rounds, candidates, steps

    @property
    def active(self) -> bool:
        """Whether anyone listens or may cancel (else the sampler gets no step hook)."""
        return self.callback is not None or self.token is not None

    def check(self, where: str) -> None:
        """Raise :class:`Cancelled` if the token was cancelled."""
        if self.token is not None and self.token.cancelled:
            raise Cancelled(f"run cancelled {where}")

    def __call__(self, stage: str, round: int, *, candidate: int = 0, step: int = 0) -> None:
        """Check the token, then report one point of the run."""
        self.check(f"at {stage} of round {round}" if stage != "prepare" else "while preparing")
        if self.callback is not None:
            self.callback(
                Progress(stage, round, self.rounds, candidate, self.candidates, step, self.steps)
            )

    def done(self, rounds_run: int) -> None:
        """Report the end of a run (no cancel check: the result is complete)."""
        if self.callback is not None:
            c, s = self.candidates, self.steps
            self.callback(Progress("done", max(rounds_run - 1, 0), rounds_run, c, c, s, s))

    def step_hook(self, round: int) -> Callable[[int], None] | None:
        """The sampler's ``on_step(step)`` for one round, or None when nobody listens."""
        if not self.active:
            return None
        token, callback = self.token, self.callback
        rounds, candidates, steps = self.rounds, self.candidates, self.steps

        def on_step(step: int) -> None:
            if token is not None and token.cancelled:
                raise Cancelled(f"run cancelled at sampler step {step} of round {round}")
            if callback is not None:
                callback(Progress("sample", round, rounds, 0, candidates, step, steps))

        return on_step
