"""Parity of denoiser backends with eager fp32: per-step error and final-image difference.

    python benchmarks/parity_runtime.py --models tiny,default,sd15 --backends onnxruntime \\
        --steps 25 --sd15-steps 3 --out benchmarks/results/runtime_parity_cpu
    python benchmarks/parity_runtime.py --device cuda --precision fp16 \\
        --models tiny,default,sd15 --backends eager,compiled,onnxruntime,tensorrt \\
        --out benchmarks/results/runtime_parity_gpu

Each run is one guided DDIM loop (guidance 3, batch 2) through eager fp32 and
through the backend (:func:`facefit_runtime.parity.sampling_parity`), judged against
:data:`facefit_runtime.parity.TOLERANCES` for the precision. A backend that cannot
run here is listed with the reason. Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch

from facefit_runtime.backends import create_backend
from facefit_runtime.models import load_model
from facefit_runtime.parity import TOLERANCES, sampling_parity

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,default")
    parser.add_argument("--backends", default="onnxruntime")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=sorted(TOLERANCES))
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument(
        "--sd15-steps", type=int, default=None, help="Fewer steps for sd15 on a CPU."
    )
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default=None, help="Write <out>.json and <out>.md.")
    args = parser.parse_args(argv)

    rows = []
    for model_name in args.models.split(","):
        ref = load_model(model_name)
        reference = ref.denoiser.to(args.device)
        contract = type(ref.contract)(ref.contract.profile.with_batch(2, 2, 2))
        steps = args.sd15_steps if model_name == "sd15" and args.sd15_steps else args.steps
        for name in args.backends.split(","):
            row = {
                "model": ref.description,
                "backend": name,
                "precision": args.precision,
                "steps": steps,
            }
            try:
                model = reference
                if args.precision != "fp32" and name in ("eager", "compiled"):
                    model = load_model(model_name).denoiser.to(args.device, DTYPES[args.precision])
                backend = create_backend(
                    name, model, contract=contract, device=args.device,
                    precision=args.precision, cache_dir=args.cache_dir,
                )  # fmt: skip
                started = time.perf_counter()
                report = sampling_parity(
                    backend, reference, contract, steps=steps, device=args.device,
                    input_dtype=None if name in ("onnxruntime", "tensorrt") else DTYPES[args.precision],
                )  # fmt: skip
                backend.close()
            except Exception as exc:  # report and go on: one backend must not hide the others
                row["error"] = f"{type(exc).__name__}: {exc}"
                print(f"{model_name:<8} {name:<12} ERROR {row['error']}", flush=True)
                rows.append(row)
                continue
            row.update(
                worst_step=report.worst_step,
                step_errors=report.step_errors,
                image_max_levels=report.image_max,
                image_mean_levels=report.image_mean,
                within_tolerance=report.within(TOLERANCES[args.precision]),
                seconds=time.perf_counter() - started,
            )
            print(f"{model_name:<8} {name:<12} {report.summary()}", flush=True)
            rows.append(row)
    if args.out:
        _write(Path(args.out), args, rows)
    return 0 if all(r.get("within_tolerance") for r in rows if "error" not in r) else 1


def _write(out: Path, args: argparse.Namespace, rows: list[dict]) -> None:
    tol = TOLERANCES[args.precision]
    machine = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    record = {
        "date": datetime.date.today().isoformat(),
        "device": machine,
        "torch": torch.__version__,
        "command": " ".join(["python", *sys.argv]),
        "tolerance": tol.__dict__,
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# Backend parity with eager fp32 ({args.precision}, {machine})",
        "",
        f"- {record['date']}, torch {record['torch']}; command: `{record['command']}`",
        "- one guided DDIM run (guidance 3, CFG batch 2) through eager and through the backend;",
        "  per-step error on identical inputs, final images compared in 8-bit levels",
        f"- tolerance ({args.precision}): step ≤ {tol.step:g}, image max ≤ {tol.image_max} levels, "
        f"mean ≤ {tol.image_mean} levels",
        "",
        "| model | backend | steps | worst step max abs Δ | final image max Δ | mean Δ | within |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['model']} | {r['backend']} | {r['steps']} | – | – | – | {r['error']} |"
            )
            continue
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['steps']} | {r['worst_step']:.2e} | "
            f"{r['image_max_levels']} | {r['image_mean_levels']:.3f} | "
            f"{'yes' if r['within_tolerance'] else 'NO'} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
