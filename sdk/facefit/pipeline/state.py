"""What one pipeline run carries between its rounds (see :mod:`.loop`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facefit.pipeline.evidence import PreparedEvidence
from facefit.pipeline.fusion import RoundScores, fuse_rounds
from facefit.pipeline.ranking import Ranker
from facefit.types import Condition, Match, Result, RoundTrace

__all__ = ["Probe", "RunState"]


@dataclass
class RunState:
    """What one run has done so far: enough to build its result at any point."""

    max_rounds: int
    traces: list[RoundTrace] = field(default_factory=list)
    per_round: list[RoundScores | None] = field(default_factory=list)
    tops: list[str | None] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    stopped: str = ""
    ranker: Ranker | None = None
    """Fuses the evidence matched directly with the rounds (None: no gallery)."""

    def ranking(self, top_k: int) -> tuple[tuple[Match, ...], dict]:
        """The fused ranking of the rounds so far, and the fusion's record."""
        if self.ranker is None:
            return fuse_rounds(self.per_round, top_k), {}
        return self.ranker.rank(self.per_round, top_k)

    def result(self, top_k: int, start: float) -> Result:
        matches, fusion = self.ranking(top_k)
        info = {
            "stopped": self.stopped or f"ran all {self.max_rounds} rounds",
            "rounds_run": len(self.traces),
            "round_seeds": self.seeds[: len(self.traces)],
            "seconds": time.perf_counter() - start,
        }
        if fusion:
            info["fusion"] = fusion
            info["direct_matches"] = self.ranker.rank([], top_k)[0]
        return Result(matches, tuple(self.traces), info)


@dataclass(frozen=True)
class Probe:
    """The evidence of one run, framed and encoded once for all its rounds."""

    prepared: PreparedEvidence
    evidence_conditions: dict[str, Condition]
    """Each modality's condition from the evidence (null where it is absent)."""
    reference_vector: np.ndarray | None
    text: Any
    notes: list[str]
    ranker: Ranker | None = None
    text_conditions: tuple[Condition, ...] = ()
    """With several descriptions, each one's text condition, in order (see
    :meth:`facefit.pipeline.Pipeline._sample_and_rank`); empty otherwise."""
