"""``facefit runtime``: what can run here, build engines ahead of time, and time backends."""

from __future__ import annotations

import json
import os
import time

import click

MODEL_HELP = "default (the generator), tiny, sd15 (SD1.5-architecture UNet, random weights) or a model directory."


def _batches(value: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not batches or min(batches) < 1:
        raise click.BadParameter("batch sizes must be positive")
    return batches


@click.group("runtime")
def runtime() -> None:
    """Denoiser runtime: backends (eager, compiled, onnxruntime, tensorrt) and engines."""


@runtime.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info_command(as_json: bool) -> None:
    """Which backends can run on this machine, and why not."""
    from facefit_runtime.backends import availability
    from facefit_runtime.cache import EngineCache

    rows = availability()
    cache = EngineCache()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "backends": [r.__dict__ for r in rows],
                    "engine_cache": str(cache.root),
                    "cached_entries": len(cache.entries()),
                },
                indent=2,
            )
        )
        return
    for row in rows:
        mark = click.style("yes", fg="green") if row.ok else click.style("no ", fg="red")
        click.echo(f"{row.backend:<12} {row.device:<5} {mark}  {row.detail}")
    click.echo(f"engine cache: {cache.root} ({len(cache.entries())} entries)")


@runtime.command("build")
@click.option("--model", "model_name", default="default", show_default=True, help=MODEL_HELP)
@click.option(
    "--backend",
    type=click.Choice(["onnxruntime", "tensorrt", "compiled"]),
    default="onnxruntime",
    show_default=True,
)
@click.option(
    "--batch",
    default="1,2,8",
    show_default=True,
    help="Shape profile: min,opt,max batch (with guidance the denoiser sees 2 per image).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16"]),
    default=None,
    help="Default: fp16 for tensorrt, else fp32.",
)
@click.option(
    "--device", default=None, help="cpu or cuda[:N]. Default: cuda for tensorrt, else cpu."
)
@click.option(
    "--cache-dir", type=click.Path(file_okay=False), default=None, help="Engine cache folder."
)
def build_command(model_name, backend, batch, precision, device, cache_dir) -> None:
    """Export the denoiser and build its engine for a shape profile, ahead of first use.

    Prints each stage with its time; the result lands in the engine cache, where
    the backend finds it at run time (same weights, precision and profile).
    """
    from facefit.errors import InputError
    from facefit_runtime.backends import create_backend
    from facefit_runtime.cache import EngineCache
    from facefit_runtime.export import export_cached
    from facefit_runtime.models import load_model

    lo_opt_hi = _batches(batch)
    if len(lo_opt_hi) != 3:
        raise InputError(f"--batch needs min,opt,max (three numbers), got {batch!r}")
    if backend == "tensorrt":  # fail before minutes of export, not after
        from facefit_runtime.tensorrt import import_tensorrt

        import_tensorrt()
    precision = precision or ("fp16" if backend == "tensorrt" else "fp32")
    device = device or ("cuda" if backend == "tensorrt" else "cpu")
    cache = EngineCache(cache_dir)

    started = time.perf_counter()
    ref = load_model(model_name)
    contract = type(ref.contract)(ref.contract.profile.with_batch(*lo_opt_hi))
    _stage("model", started, ref.description)
    if backend in ("onnxruntime", "tensorrt"):
        started = time.perf_counter()
        path = export_cached(ref.denoiser, contract, precision=precision, cache=cache)
        _stage("onnx export", started, str(path))
    started = time.perf_counter()
    instance = create_backend(
        backend,
        ref.denoiser,
        contract=contract,
        device=device,
        precision=precision,
        cache_dir=cache.root,
    )
    what = {"onnxruntime": "sessions", "tensorrt": "engine", "compiled": "compile"}[backend]
    _stage(what, started, str(cache.path_for(instance.key)) if backend == "tensorrt" else "")
    for b in sorted(set(lo_opt_hi)):
        started = time.perf_counter()
        instance(*contract.sample_inputs(b, device=device))
        _stage(f"first call, batch {b}", started, "")
    instance.close()
    click.echo(f"profile {contract.profile.key}, {precision}, cache {cache.root}")


def _stage(name: str, started: float, detail: object) -> None:
    click.echo(f"  {name:<22} {time.perf_counter() - started:8.1f} s  {detail}")


@runtime.command("bench")
@click.option("--model", "model_name", default="default", show_default=True, help=MODEL_HELP)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    default=("eager", "onnxruntime"),
    show_default=True,
    help="Backends to time side by side (repeat the option).",
)
@click.option("--batch", default="1,2", show_default=True, help="Batch sizes, comma-separated.")
@click.option("--rounds", default=10, show_default=True, help="Timed calls per backend and batch.")
@click.option(
    "--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def bench_command(
    model_name, backends, batch, rounds, precision, device, cache_dir, as_json
) -> None:
    """Per-step latency and it/s of backends, timed interleaved on the same inputs."""
    import torch

    from facefit_runtime.backends import create_backend
    from facefit_runtime.models import load_model
    from facefit_runtime.timing import cuda_sync, interleaved

    batches = _batches(batch)
    ref = load_model(model_name)
    contract = type(ref.contract)(
        ref.contract.profile.with_batch(min(batches), batches[0], max(batches))
    )
    made = {
        name: create_backend(
            name,
            ref.denoiser,
            contract=contract,
            device=device,
            precision=precision,
            cache_dir=cache_dir,
        )
        for name in backends
    }
    results = []
    with torch.inference_mode():
        for b in batches:
            inputs = contract.sample_inputs(b, device=device)
            timings = interleaved(made, inputs, rounds=rounds, synchronize=cuda_sync(device))
            base = timings.get("eager")
            for name, t in timings.items():
                row = {"backend": name, "batch": b, **t.as_dict()}
                if base is not None:
                    row["speedup_vs_eager"] = base.median / t.median
                results.append(row)
    for backend in made.values():
        backend.close()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if as_json:
        record = {
            "model": ref.description,
            "device": device,
            "precision": precision,
            "load_average": load,
            "results": results,
        }
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"{ref.description}; {device}, {precision}; median of {rounds} interleaved calls")
    if load is not None and load > (os.cpu_count() or 1):
        click.secho(
            f"load average {load:.1f} on {os.cpu_count()} CPUs: other work competes, timings are noisy",
            fg="yellow",
        )
    click.echo(
        f"{'backend':<12} {'batch':>5} {'ms/step':>9} {'min ms':>8} {'it/s':>8} {'× eager':>8}"
    )
    for row in results:
        speedup = f"{row['speedup_vs_eager']:.2f}" if "speedup_vs_eager" in row else "-"
        click.echo(
            f"{row['backend']:<12} {row['batch']:>5} {row['median_ms']:>9.1f} {row['min_ms']:>8.1f} "
            f"{row['it_per_s']:>8.2f} {speedup:>8}"
        )


@runtime.command("cache")
@click.option("--clear", "clear", is_flag=True, help="Remove every cached export and engine.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
def cache_command(clear: bool, cache_dir: str | None) -> None:
    """List (or clear) cached ONNX exports and TensorRT engines."""
    from facefit_runtime.cache import EngineCache

    cache = EngineCache(cache_dir)
    if clear:
        click.echo(f"removed {cache.clear()} entries from {cache.root}")
        return
    entries = cache.entries()
    click.echo(f"{cache.root}: {len(entries)} entries")
    for e in entries:
        k = e.key
        click.echo(
            f"{k['kind']:<9} {k['precision']:<5} {k['profile']:<36} {e.size / 1e6:8.1f} MB  "
            f"{k['toolchain']}; {k['device']}; weights {k['weights'][:12]}"
        )
