"""Denoiser runtime speed: per-step latency and it/s of each backend, and full sampling runs.

CPU, the default generator model, every backend side by side::

    OMP_WAIT_POLICY=PASSIVE FACEFIT_BENCH_RESULTS=benchmarks/results \\
        pytest benchmarks/bench_runtime.py -o python_files='bench_*.py' --benchmark-enable \\
        -p no:cacheprovider -k cpu

GPU (skips without CUDA): the SD1.5-architecture UNet at 512² (64×64×4 latents, 77
tokens) with CFG batch 2 in fp16, and the default model at batch 1/2/4/8::

    FACEFIT_BENCH_RESULTS=benchmarks/results \\
        pytest benchmarks/bench_runtime.py -o python_files='bench_*.py' --benchmark-enable \\
        -p no:cacheprovider -k gpu

``OMP_WAIT_POLICY=PASSIVE`` matters on a shared CPU: with the default (spinning)
policy, PyTorch's two OpenMP threads stall each other whenever another process
takes a core, and eager gets 10–100× slower — which would flatter every other
backend. The side-by-side tests time backends round-robin on the same inputs
(:mod:`facefit_runtime.timing`), so load changes hit all alike; the per-backend
``test_*_step`` tests are pytest-benchmark's usual table. With
``FACEFIT_BENCH_RESULTS`` set, ``runtime_cpu.{json,md}`` / ``runtime_gpu.{json,md}``
are written there. ``FACEFIT_BENCH_ROUNDS`` (default 5) sets timed calls per case;
``FACEFIT_BENCH_COMPILED=1`` adds torch.compile on the CPU (Inductor compiles for
minutes per batch size on 2 cores).

The default model is the generator's default configuration; with no trained model
installed its weights are random (same cost; the results say so).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import pytest
import torch

from facefit_runtime.backends import availability, create_backend
from facefit_runtime.models import load_model
from facefit_runtime.timing import cuda_sync, interleaved

ROUNDS = int(os.environ.get("FACEFIT_BENCH_ROUNDS", "5"))
BATCHES = (1, 2, 4, 8)
CPU_TARGET = 2.5  # ONNX Runtime vs eager, issue 8
SD15_CFG_STEP_TFLOP = 1.61  # one SD1.5 UNet call at 512², batch 2 (DESIGN.md)
H100_DENSE_FP16_TFLOPS = 989.0  # H100 SXM dense BF16/FP16 tensor-core peak
GPU_TARGET_IT_S = 150.0
PUBLISHED_H100 = {"eager": 54.5, "torch.compile": 66.0, "stable-fast": 104.6}

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _results_dir() -> Path | None:
    value = os.environ.get("FACEFIT_BENCH_RESULTS")
    return Path(value) if value else None


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpus_usable": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["pytest", *sys.argv[1:]]),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["compute_capability"] = "sm_{}{}".format(*torch.cuda.get_device_capability(0))
    return info


def _gflop_per_item(model, contract) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    inputs = contract.sample_inputs(1, device=next(model.parameters()).device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() / 1e9


def _write(name: str, record: dict, markdown: str) -> None:
    folder = _results_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (folder / f"{name}.md").write_text(markdown, encoding="utf-8")


# -- CPU: the default generator model ------------------------------------------------------


def _cpu_backend_names() -> list[str]:
    names = ["eager", "onnxruntime"]
    if os.environ.get("FACEFIT_BENCH_COMPILED") == "1":
        names.append("compiled")
    return names


@pytest.fixture(scope="module")
def cpu_model():
    return load_model("default")


@pytest.fixture(scope="module")
def cpu_backends(cpu_model):
    contract = type(cpu_model.contract)(cpu_model.contract.profile.with_batch(1, 2, 8))
    made = {
        name: create_backend(name, cpu_model.denoiser, contract=contract, device="cpu")
        for name in _cpu_backend_names()
    }
    if "compiled" in made:  # compile every batch size before anything is timed
        made["compiled"].warmup(contract, BATCHES)
    yield made, contract
    for backend in made.values():
        backend.close()


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("backend", _cpu_backend_names())
def test_cpu_step(benchmark, cpu_backends, backend, batch):
    made, contract = cpu_backends
    inputs = contract.sample_inputs(batch)
    call = made[backend]
    benchmark.group = f"cpu step, batch {batch}"
    with torch.inference_mode():
        benchmark.pedantic(call, args=inputs, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    benchmark.extra_info["it_per_s"] = 1.0 / benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = batch / benchmark.stats.stats.median


def _sampling_run(cpu_model, backend, steps=25, guidance=3.0):
    from facefit.generator import domain_condition
    from facefit_plugins.samplers import DDIMSampler

    sampler = DDIMSampler(generator=cpu_model.generator)
    return lambda: sampler.sample(
        backend, [domain_condition("photo")], num_images=1, steps=steps, guidance=guidance, seed=0
    )


@pytest.mark.parametrize("backend", _cpu_backend_names())
def test_cpu_full_sampling_run(benchmark, cpu_model, cpu_backends, backend):
    made, _ = cpu_backends
    benchmark.group = "cpu full run: 25 DDIM steps, CFG (batch 2), one image"
    benchmark.pedantic(
        _sampling_run(cpu_model, made[backend]), rounds=2, warmup_rounds=1, iterations=1
    )


def test_cpu_side_by_side(cpu_model, cpu_backends):
    """Every CPU backend interleaved at batch 1/2/4/8, plus full runs; writes runtime_cpu.*."""
    made, contract = cpu_backends
    machine = _machine()
    gflop = _gflop_per_item(cpu_model.denoiser, contract)
    rows = []
    with torch.inference_mode():
        for batch in BATCHES:
            inputs = contract.sample_inputs(batch)
            timings = interleaved(made, inputs, rounds=ROUNDS, warmup=1)
            for name, t in timings.items():
                rows.append(
                    {
                        "backend": name,
                        "batch": batch,
                        **t.as_dict(),
                        "gflop_per_s": gflop * batch / t.median,
                        "speedup_vs_eager": timings["eager"].median / t.median,
                        "speedup_vs_eager_best": timings["eager"].best / t.best,
                    }
                )
    runs = interleaved(
        {name: _sampling_run(cpu_model, f) for name, f in made.items()}, rounds=2, warmup=1
    )
    full = {name: {"median_s": t.median, "min_s": t.best} for name, t in runs.items()}
    machine["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    ort = [r for r in rows if r["backend"] == "onnxruntime"]
    record = {
        "model": cpu_model.description,
        "profile": contract.profile.key,
        "gflop_per_item": gflop,
        "machine": machine,
        "rounds": ROUNDS,
        "target_onnxruntime_vs_eager": CPU_TARGET,
        "target_met_at_batches": [r["batch"] for r in ort if r["speedup_vs_eager"] >= CPU_TARGET],
        "steps": rows,
        "full_run_25_ddim_cfg": full,
    }
    _write("runtime_cpu", record, _cpu_markdown(record))
    assert all(r["median_ms"] > 0 for r in rows)


def _cpu_markdown(record: dict) -> str:
    m = record["machine"]
    lines = [
        "# Denoiser runtime on the CPU",
        "",
        f"- model: {record['model']} (`{record['profile']}`), {record['gflop_per_item']:.2f} GFLOP per image per step",
        f"- machine: {m['cpu']}, {m['cpus_usable']} usable CPUs shared with other work "
        f"(load average {_load(m['load_average_at_start'])} at start, {_load(m['load_average_at_end'])} at end), "
        f"torch {m['torch']} ({m['torch_threads']} threads, OMP_WAIT_POLICY={m['omp_wait_policy']}), "
        f"onnxruntime {m.get('onnxruntime', '-')}",
        f"- date: {m['date']}; command: `{m['command']}`",
        f"- backends timed round-robin on the same inputs, median (and best) of {record['rounds']} calls",
        "",
        "| backend | batch | ms/step (median) | best ms | it/s | images/s | GFLOP/s | × eager (median) | × eager (best) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["steps"]:
        lines.append(
            f"| {r['backend']} | {r['batch']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | "
            f"{r['it_per_s']:.2f} | {r['it_per_s'] * r['batch']:.2f} | {r['gflop_per_s']:.1f} | "
            f"{r['speedup_vs_eager']:.2f} | {r['speedup_vs_eager_best']:.2f} |"
        )
    lines += [
        "",
        "Full sampling run (25 DDIM steps, guidance 3 → batch 2 per step, one 64×64 image):",
        "",
    ]
    lines += [
        f"- {name}: {v['median_s']:.2f} s (best {v['min_s']:.2f} s)"
        for name, v in record["full_run_25_ddim_cfg"].items()
    ]
    load = (m.get("load_average_at_start") or [0])[0]
    if load > m["cpus_usable"]:
        lines += [
            "",
            f"The machine was oversubscribed (load {load:.1f} on {m['cpus_usable']} CPUs): each backend "
            "ran on a fraction of a core, so per-call overheads — where ONNX Runtime and "
            "torch.compile gain most — were hidden behind the CPU share every backend got alike.",
        ]
    met = record["target_met_at_batches"]
    missed = [b for b in sorted({r["batch"] for r in record["steps"]}) if b not in met]
    verdict = f"met at batch {', '.join(map(str, met))}" if met else "not met at any batch"
    if met and missed:
        verdict += f", not at batch {', '.join(map(str, missed))}"
    if missed:
        verdict += " (large batches are compute-bound convolutions: docs/deploying.md)"
    lines += [
        "",
        f"Target ONNX Runtime ≥ {record['target_onnxruntime_vs_eager']}× eager (median): "
        + verdict
        + ".",
        "",
    ]
    return "\n".join(lines)


def _load(value) -> str:
    return "-" if not value else "/".join(f"{x:.1f}" for x in value)


# -- GPU -------------------------------------------------------------------------------------


def _gpu_backends(model, contract, precision: str) -> dict:
    """Every backend that can run on this GPU, made for ``model``; skipped ones say why."""
    ok = {(a.backend, a.device): a for a in availability()}
    made, skipped = {}, {}
    for name in ("eager", "compiled", "onnxruntime", "tensorrt"):
        row = ok.get((name, "cuda"))
        if row is None or not row.ok:
            skipped[name] = row.detail if row else "unknown"
            continue
        try:
            made[name] = create_backend(
                name, model, contract=contract, device="cuda", precision=precision
            )
        except Exception as exc:  # one failing backend must not hide the others' numbers
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return made, skipped


@cuda
def test_gpu_sd15_cfg_batch2():
    """SD1.5-architecture UNet, 512² (64×64×4 latents), CFG batch 2, fp16: it/s per backend."""
    from facefit_runtime.parity import TOLERANCES, sampling_parity

    ref = load_model("sd15")
    reference = ref.denoiser.cuda()
    contract = type(ref.contract)(ref.contract.profile.with_batch(1, 2, 4))
    half = load_model("sd15").denoiser.half().cuda()  # eager/compiled run the fp16 model
    made, skipped = _gpu_backends(half, contract, "fp16")
    inputs = contract.sample_inputs(2, device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        for backend in made.values():  # compile, capture graphs, build engines
            backend(*inputs)
        timings = interleaved(
            made,
            inputs,
            rounds=max(ROUNDS, 50),
            warmup=5,
            synchronize=cuda_sync("cuda"),
        )
    limit_ms = SD15_CFG_STEP_TFLOP / H100_DENSE_FP16_TFLOPS * 1e3
    rows = []
    for name, t in timings.items():
        parity = sampling_parity(
            made[name], reference, contract, steps=10, device="cuda", input_dtype=torch.float16
        )
        rows.append(
            {
                "backend": name,
                **t.as_dict(),
                "fraction_of_compute_limit": limit_ms / (t.median * 1e3),
                "parity": parity.summary(),
                "parity_ok_fp16": parity.within(TOLERANCES["fp16"]),
            }
        )
    record = {
        "model": ref.description,
        "shape": "batch 2 (CFG) × 4×64×64 latents (512² images), 77×768 tokens, fp16",
        "machine": _machine(),
        "compute_limit_ms": limit_ms,
        "published_h100_it_s": PUBLISHED_H100,
        "target_it_s": GPU_TARGET_IT_S,
        "results": rows,
        "skipped": skipped,
    }
    _write("runtime_gpu_sd15", record, _gpu_markdown(record))
    assert rows


@cuda
@pytest.mark.parametrize("precision", ["fp16"])
def test_gpu_default_model(precision):
    """The default generator model on the GPU at batch 1/2/4/8, every backend, interleaved."""
    ref = load_model("default")
    model = ref.denoiser.half().cuda()
    contract = type(ref.contract)(ref.contract.profile.with_batch(1, 2, 8))
    made, skipped = _gpu_backends(model, contract, precision)
    rows = []
    with torch.inference_mode():
        for batch in BATCHES:
            inputs = contract.sample_inputs(batch, device="cuda", dtype=torch.float16)
            for t in interleaved(
                made, inputs, rounds=max(ROUNDS, 50), warmup=5, synchronize=cuda_sync("cuda")
            ).values():
                rows.append({"backend": t.name, "batch": batch, **t.as_dict()})
    record = {
        "model": ref.description,
        "precision": precision,
        "machine": _machine(),
        "results": rows,
        "skipped": skipped,
    }
    lines = [f"# Default model on {record['machine'].get('gpu')} ({precision})", ""]
    lines += ["| backend | batch | ms/step | it/s |", "|---|---:|---:|---:|"]
    lines += [
        f"| {r['backend']} | {r['batch']} | {r['median_ms']:.2f} | {r['it_per_s']:.1f} |"
        for r in rows
    ]
    lines += ["", *[f"- skipped {k}: {v}" for k, v in skipped.items()], ""]
    _write("runtime_gpu_default", record, "\n".join(lines))
    assert rows


def _gpu_markdown(record: dict) -> str:
    m = record["machine"]
    lines = [
        f"# SD1.5-architecture UNet on {m.get('gpu')} ({m.get('compute_capability')})",
        "",
        f"- {record['shape']}; {record['model']}",
        f"- compute limit {record['compute_limit_ms']:.2f} ms/step (1.61 TFLOP at {H100_DENSE_FP16_TFLOPS:.0f} TFLOP/s dense fp16)",
        f"- published H100: eager {PUBLISHED_H100['eager']}, torch.compile {PUBLISHED_H100['torch.compile']}, "
        f"stable-fast {PUBLISHED_H100['stable-fast']} it/s; target ≥ {record['target_it_s']:.0f} it/s",
        f"- date {m['date']}; torch {m['torch']}; command `{m['command']}`",
        "",
        "| backend | ms/step | it/s | fraction of compute limit | parity vs eager fp32 (10 DDIM steps) |",
        "|---|---:|---:|---:|---|",
    ]
    for r in record["results"]:
        lines.append(
            f"| {r['backend']} | {r['median_ms']:.2f} | {r['it_per_s']:.1f} | "
            f"{r['fraction_of_compute_limit']:.0%} | {r['parity']} ({'ok' if r['parity_ok_fp16'] else 'OUT OF TOLERANCE'}) |"
        )
    lines += ["", *[f"- skipped {k}: {v}" for k, v in record["skipped"].items()], ""]
    return "\n".join(lines)
