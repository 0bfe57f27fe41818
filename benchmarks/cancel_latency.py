"""How fast a CancelToken stops a pipeline run on the shipped default model.

    nice -n 19 .venv/bin/python benchmarks/cancel_latency.py --trials 12 \
        --json benchmarks/results/cancel_latency.json

One full round is timed first (default settings: 4 candidates, 25 DDPM steps,
guidance 3, CPU), giving the sampler's step time (the time between two step
reports). Each trial then starts a run and, from another thread, cancels it at a
random moment within round 0's first ten steps. Per trial it records the latency
(from ``token.cancel()`` to ``Cancelled`` reaching the caller), the denoiser calls
started after the cancel (0 means the run stopped at the end of the step in
progress), and the latency as a share of that step's own duration (the steps'
times vary a lot on a loaded machine). No gallery: cancellation does not depend on it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import threading
import time
from pathlib import Path


class TimedBackend:
    """Wraps the denoiser backend and notes when each call starts and ends."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.calls = inner, inner.name, []

    def __call__(self, *args):
        start = time.perf_counter()
        out = self.inner(*args)
        self.calls.append((start, time.perf_counter()))
        return out


def one_trial(pipeline, evidence, delay: float) -> dict[str, float]:
    """Cancel ``delay`` seconds after round 0's sampling starts; return what it took to stop."""
    from facefit.pipeline import Cancelled, CancelToken

    token = CancelToken()
    sampling = threading.Event()
    cancelled_at: list[float] = []
    backend = pipeline.components.backend = TimedBackend(pipeline.components.backend)

    def progress(p) -> None:
        if p.stage == "sample":
            sampling.set()

    def canceller() -> None:
        sampling.wait()
        time.sleep(delay)
        cancelled_at.append(time.perf_counter())
        token.cancel()

    thread = threading.Thread(target=canceller)
    thread.start()
    try:
        pipeline.run(evidence, progress=progress, cancel=token)
        raise RuntimeError("the run finished before it was cancelled")
    except Cancelled:
        stopped = time.perf_counter()
    finally:
        pipeline.components.backend = backend.inner
    thread.join()
    at = cancelled_at[0]
    after = sum(start > at for start, _ in backend.calls)
    in_progress = [(a, b) for a, b in backend.calls if a <= at <= b]
    step = in_progress[0][1] - in_progress[0][0] if in_progress else None
    return {
        "latency": stopped - at,
        "calls_after_cancel": after,
        "share_of_step": None if step is None else (stopped - at) / step,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    args = parser.parse_args()

    from facefit.pipeline import Pipeline, PipelineConfig
    from facefit.types import Evidence
    from facefit.version import __version__

    demo = Path(__file__).resolve().parents[1] / "sdk" / "facefit" / "demo_data" / "probes"
    evidence = Evidence(sketch=demo / "sketch_photo1_0724.png", text="a young man with black hair")
    config = PipelineConfig()
    pipeline = Pipeline(config).warm_up()
    stamps: list[float] = []

    def record(p) -> None:
        if p.stage == "sample" and p.round == 0 and 0 < p.step <= config.settings.steps:
            stamps.append(time.perf_counter())

    pipeline.run(evidence, progress=record, rounds=1)
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    step = statistics.median(steps)
    rng = random.Random(0)
    trials = [
        one_trial(pipeline, evidence, rng.uniform(0.0, 10 * step)) for _ in range(args.trials)
    ]
    latencies = [t["latency"] for t in trials]
    shares = [t["share_of_step"] for t in trials if t["share_of_step"] is not None]
    figures = {
        "settings": {k: getattr(config.settings, k) for k in ("candidates", "steps", "guidance")},
        "sampler": config.components["sampler"].plugin,
        "trials": args.trials,
        "latency_ms": {
            "median": round(1000 * statistics.median(latencies), 1),
            "max": round(1000 * max(latencies), 1),
        },
        "sampler_step_ms": {"median": round(1000 * step, 1), "max": round(1000 * max(steps), 1)},
        "denoiser_calls_started_after_cancel_max": max(t["calls_after_cancel"] for t in trials),
        "latency_share_of_the_step_in_progress_max": round(max(shares), 3) if shares else None,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}",
        "facefit": __version__,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
