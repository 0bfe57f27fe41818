"""Timing backends fairly: interleaved calls on the same inputs, robust statistics.

Backends are timed round-robin (one call of each, then again), so a change in
machine load during the run (other processes on a shared CPU, GPU clocks) hits
all of them alike. On a GPU every call is synchronised before the clock stops.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Timing:
    """Seconds per call of one backend."""

    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    def per_second(self, per_call: int = 1) -> float:
        """Calls (or ``per_call`` items per call) per second at the median."""
        return per_call / self.median

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median * 1e3,
            "min_ms": self.best * 1e3,
            "it_per_s": 1.0 / self.median,
            "rounds": len(self.seconds),
        }


def interleaved(
    calls: dict[str, Callable[..., Any]],
    args: tuple[Any, ...] = (),
    *,
    rounds: int = 10,
    warmup: int = 2,
    synchronize: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Time ``call(*args)`` for each callable ``rounds`` times, round-robin, after ``warmup``."""
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        for call in calls.values():
            call(*args)
    sync()
    timings = {name: Timing(name) for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call(*args)
            sync()
            timings[name].seconds.append(time.perf_counter() - started)
    return timings


def cuda_sync(device: Any) -> Callable[[], None] | None:
    """A synchronising function for a CUDA device, None for the CPU."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    return lambda: torch.cuda.synchronize(device)
