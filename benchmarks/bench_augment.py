"""Throughput of ``facefit augment`` on this machine: synthetic sketches per second.

Draws every one of ``--mugshots`` training photos (the first of ``--source``, read
through :class:`facefit.augment.inputs.TrainingPhotos`, so never a development or
calibration photo) in each of FS2K's 3 styles with a generator, once per denoiser
backend, and reports sketches per second. Per backend the job's shards are made
twice by one :class:`~facefit.augment.worker.ShardRunner`: a cold pass (the ONNX
export, when not cached yet, and ONNX Runtime's sessions happen here) and a timed
pass with everything loaded, which is the rate a long job runs at. Both passes go
through the whole path: detect + align + embed the mugshots, sample, SFace filter,
write PNGs. Output goes to a temporary folder and is deleted.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/bench_augment.py \\
        --model checkpoints/generator-v2 --threads 1 --note "a training job used the other core"

Writes ``--out``.json and ``--out``.md. Needs ``../shared/data`` and the model files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(args: argparse.Namespace, backend: str, batch_size: int, work: Path) -> dict:
    """Cold and warm passes of one job on ``backend``; seconds and sketches per second."""
    import torch

    from facefit.augment import AugmentSettings
    from facefit.augment.inputs import TrainingPhotos
    from facefit.augment.run import prepare_job
    from facefit.augment.store import OutputFolder
    from facefit.augment.worker import ShardRunner

    photos = TrainingPhotos(args.data, tuple(args.source)).mugshots()[: args.mugshots]
    settings = AugmentSettings(
        model=args.model,
        per_mugshot=1,
        styles="0,1,2",
        steps=args.steps,
        sampler=args.sampler,
        guidance=args.guidance,
        batch_size=batch_size,
        shard_size=args.shard_size,
        backend=backend,
        device="cpu",
    )
    torch.set_num_threads(args.threads)
    name = f"{backend}-{batch_size}"
    job, folder, _ = prepare_job(photos, work / f"{name}-cold", settings, data_dir=args.data)
    started = time.perf_counter()
    runner = ShardRunner(job, threads=args.threads)
    loaded = time.perf_counter()
    for shard in job.shards:
        runner.run(shard, folder)
    cold = time.perf_counter()
    timed = OutputFolder(work / f"{name}-warm")
    timed.open(job)
    cpu = time.process_time()
    units = [runner.run(shard, timed) for shard in job.shards]
    warm = time.perf_counter()
    cpu = time.process_time() - cpu
    sketches = sum(len(u["records"]) + len(u["dropped"]) for u in units)
    kept = sum(len(u["records"]) for u in units)
    stages = {
        stage: round(sum(u["seconds"][stage] for u in units), 3)
        for stage in ("align_embed", "generate", "filter_write", "total")
    }
    return {
        "backend": job.settings.backend,
        "batch_size": batch_size,
        "mugshots": len(job.mugshots),
        "sketches": sketches,
        "kept_by_filter": kept,
        "load_s": round(loaded - started, 2),
        "cold_pass_s": round(cold - loaded, 2),
        "warm_pass_s": round(warm - cold, 2),
        "warm_stages_s": stages,
        "sketches_per_s": round(sketches / (warm - cold), 3),
        "warm_pass_cpu_s": round(cpu, 2),
        "sketches_per_cpu_s": round(sketches / cpu, 3),
        "sampling_only_sketches_per_s": round(sketches / stages["generate"], 3),
    }


def markdown(result: dict) -> str:
    c = result["config"]
    rows = [
        "| backend | batch | sketches | warm pass (s) | sketches/s | CPU s used | "
        "sketches per CPU-s | sampling only (sketches/s) | load (s) | cold pass (s) | "
        "kept by filter |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        rows.append(
            f"| {r['backend']} | {r['batch_size']} | {r['sketches']} | {r['warm_pass_s']} | "
            f"**{r['sketches_per_s']}** | {r['warm_pass_cpu_s']} | {r['sketches_per_cpu_s']} | "
            f"{r['sampling_only_sketches_per_s']} | {r['load_s']} | "
            f"{r['cold_pass_s']} | {r['kept_by_filter']} |"
        )
    return "\n".join(
        [
            "# `facefit augment` throughput on this CPU",
            "",
            f"- date: {result['date']}",
            f"- machine: {result['machine']}",
            f"- command: `{result['command']}`",
            f"- generator: `{c['model']}` ({c['model_kind']}); {c['sampler']}, {c['steps']} "
            f"steps, guidance {c['guidance']}; {c['mugshots']} training photos × 3 styles; "
            f"batch = sketches per sampler call (twice that per denoiser call, with "
            f"guidance); {c['threads']} thread(s)",
            f"- note: {result['note']}",
            "",
            *rows,
            "",
            "Sketches per second is the warm pass: the whole path (detect, align and embed the "
            "mugshots, sample, SFace filter, write PNGs) with the models loaded and ONNX "
            "Runtime's sessions made, the rate a long job runs at, in wall-clock time. "
            "On a machine shared with other jobs that rate depends on the load, so the CPU "
            "time the process used is given too: sketches per CPU-second is about what one "
            "free core would give at 1 thread. The cold pass adds the "
            "ONNX export (once per weights, then cached) and session creation. The "
            "filter's kept count depends on the generator and is not a quality figure.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--source", nargs="+", default=["celeba-train"])
    parser.add_argument("--model", default=str(REPO / "checkpoints" / "generator-v2"))
    parser.add_argument("--mugshots", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--sampler", default="ddpm")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[24, 6])
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "eager"])
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/augment_throughput"))
    parser.add_argument("--note", default="", help="what else ran on the machine")
    args = parser.parse_args()

    from facefit.augment.plan import read_model_config
    from facefit.generator.loading import resolve_model_dir

    model_dir = resolve_model_dir(args.model)
    config = read_model_config(model_dir)
    kind = (
        f"{config.get('conditioning', 'cross-attention')}, reference image "
        f"{'yes' if config.get('reference_image') else 'no'}, {config.get('prediction_type')}"
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-augment-") as work:
        for backend in args.backends:
            for batch_size in args.batch_sizes:
                runs.append(measure(args, backend, batch_size, Path(work)))
                print(json.dumps(runs[-1]), flush=True)
    try:
        model_shown = str(model_dir.resolve().relative_to(REPO))
    except ValueError:
        model_shown = str(model_dir)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{_cpus()} CPU cores, {platform.platform()}",
        "command": "python benchmarks/bench_augment.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in _shown_args(args).items()),
        "note": args.note,
        "config": {
            "model": model_shown,
            "model_kind": kind,
            "sampler": args.sampler,
            "steps": args.steps,
            "guidance": args.guidance,
            "mugshots": args.mugshots,
            "batch_sizes": args.batch_sizes,
            "threads": args.threads,
        },
        "runs": runs,
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


def _shown_args(args: argparse.Namespace) -> dict:
    shown = {}
    for key in ("model", "mugshots", "steps", "batch_sizes", "threads", "backends"):
        value = getattr(args, key)
        if key == "model":
            with contextlib.suppress(ValueError):
                value = str(Path(value).resolve().relative_to(REPO))
        shown[key] = " ".join(map(str, value)) if isinstance(value, list) else value
    return shown


if __name__ == "__main__":
    main()
