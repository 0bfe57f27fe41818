"""Measure generator gates 1–4 of issue 24 for one or more models, side by side.

    python scripts/generator_gates.py --data ../shared/data \\
        --models sdk/facefit/generator/default out/train-cpu-v2/model \\
        --out benchmarks/results/generator_v2 [--grid out/generator_v2_gates.png] \\
        [--limit 8] [--steps 20] [--backend onnxruntime] [--force]

Every model is measured on the same development items with the same seeds, through
the pipeline's sampler and denoiser backend. Writes ``OUT.json`` and ``OUT.md``
(command, machine, date, split fingerprints, each model's numbers beside each gate's
target, PASS/FAIL). The logic lives in :mod:`facefit.generator.gates`; the gates are
explained in docs/generator.md ("Gates").
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import shlex
import sys
from pathlib import Path


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _model_name(path: str) -> str:
    p = Path(path)
    if path == "default" or p.resolve() == Path(__file__).resolve().parents[1] / (
        "sdk/facefit/generator/default"
    ):
        return "default"
    return p.parent.name if p.name == "model" else p.name


def _parser() -> argparse.ArgumentParser:
    from facefit.generator.gates import GateSettings

    d = GateSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--models", nargs="+", required=True, help="model directories (or default)")
    parser.add_argument("--names", nargs="+", help="a column name per model")
    parser.add_argument("--out", required=True, help="report stem: writes OUT.json and OUT.md")
    parser.add_argument("--grid", help="also write the sample grid PNG here")
    parser.add_argument("--limit", type=int, help="at most N probes per gate (a quick run)")
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--sampler", default=d.sampler, help="ddpm (default), ddim, dpm-solver")
    parser.add_argument("--backend", default=d.backend, help="eager (default) or onnxruntime")
    parser.add_argument("--guidance", type=float, default=d.guidance)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument(
        "--celeba-per-identity", type=int, default=d.celeba_per_identity, help="gate 3; 0: all"
    )
    parser.add_argument("--judge", help="attribute judge JSON (default: the shipped one)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    return parser


def main() -> None:
    args = _parser().parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    targets = [out.with_name(out.name + ".json"), out.with_name(out.name + ".md")]
    targets += [Path(args.grid)] if args.grid else []
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.force:
        sys.exit(f"{', '.join(existing)} exist; pass --force to overwrite")
    names = args.names or [_model_name(m) for m in args.models]
    if len(names) != len(args.models):
        sys.exit(f"--names gives {len(names)} names for {len(args.models)} --models")

    import torch

    from facefit.attribute_judge import JUDGE_PATH, AttributeJudge
    from facefit.generator.gates import (
        GateRunner,
        GateSettings,
        gates_grid,
        load_dev_data,
        run_gates,
        write_report,
    )
    from facefit.generator.loading import load_generator
    from facefit.registry import Registry

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = GateSettings(
        sampler=args.sampler,
        backend=args.backend,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        batch_size=args.batch_size,
        limit=args.limit,
        celeba_per_identity=args.celeba_per_identity,
    )
    registry = Registry.load()
    models = [(n, m, load_generator(m)) for n, m in zip(names, args.models)]
    judge = AttributeJudge.load(args.judge or JUDGE_PATH)
    data = load_dev_data(args.data, image_size=models[0][2].image_size, registry=registry)
    report = run_gates(models, data, settings, judge=judge, registry=registry)
    note = f"; {args.note}" if args.note else ""
    report = {
        "command": "python scripts/generator_gates.py "
        + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), CPU only{note}",
        **report,
    }
    for path in write_report(report, out, force=args.force):
        print(path)
    if args.grid:
        runners = [(n, GateRunner(m, settings, registry=registry)) for n, _, m in models]
        print(gates_grid(runners, data, args.grid))


if __name__ == "__main__":
    main()
