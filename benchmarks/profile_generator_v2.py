"""Profile generator v2 recipes on this machine: seconds per step and loss per wall-clock minute.

Each variant starts from the same config (``examples/train/cpu-v2.toml`` by
default) with a few keys changed, trains ``--steps`` steps from scratch on the
same pack, and records wall seconds per step and the mean training loss of the
last quarter of its steps (Min-SNR-weighted diffusion loss: comparable across
variants that share ``snr_gamma``). It writes JSON and a markdown table.

    python benchmarks/profile_generator_v2.py --steps 150 --out benchmarks/results/generator_v2_profile
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from datetime import date
from pathlib import Path

VARIANTS = {
    "small (16-32-64-128), b16": {"model": {"block_out_channels": [16, 32, 64, 128]}},
    "small, b32": {"model": {"block_out_channels": [16, 32, 64, 128]}, "batch_size": 32},
    "small + identity loss": {
        "model": {"block_out_channels": [16, 32, 64, 128]},
        "identity": {"weight": 0.1},
    },
    "base (32-64-128-128), b16": {"model": {"block_out_channels": [32, 64, 128, 128]}},
    "wide (48-96-192-192), b16": {"model": {"block_out_channels": [48, 96, 192, 192]}},
    "small, ε-prediction": {
        "model": {"block_out_channels": [16, 32, 64, 128], "prediction_type": "epsilon"}
    },
}


def variant_config(base, changes: dict):
    from facefit.generator.training.config import TrainConfig

    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)}
    for key, value in changes.items():
        values[key] = {**values[key], **value} if isinstance(value, dict) else value
    return TrainConfig(**values)


def profile(config, steps: int) -> dict:
    import torch

    from facefit.generator.training.trainer import Trainer

    trainer = Trainer(config)
    trainer.train_step()  # warm-up
    losses, started = [], time.perf_counter()
    for _ in range(steps):
        losses.append(trainer.train_step()["diffusion"])
    wall = (time.perf_counter() - started) / steps
    tail = losses[-max(1, steps // 4) :]
    return {
        "parameters_m": round(trainer.model.parameter_count() / 1e6, 2),
        "batch_size": config.batch_size,
        "s_per_step": round(wall, 3),
        "images_per_s": round(config.batch_size / wall, 1),
        "steps_per_hour": int(3600 / wall),
        "loss_last_quarter": round(sum(tail) / len(tail), 4),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    from facefit.generator.training.config import load_train_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="examples/train/cpu-v2.toml")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--out", default="benchmarks/results/generator_v2_profile")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    args = parser.parse_args()
    base = load_train_config(args.config, out="/tmp/facefit-profile-v2")
    results = {}
    for name, changes in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        results[name] = profile(variant_config(base, changes), args.steps)
        print(name, results[name], flush=True)
    record = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores, no GPU",
        "command": "python benchmarks/profile_generator_v2.py " + f"--steps {args.steps}",
        "config": args.config,
        "note": args.note,
        "results": results,
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    lines = [
        "# Generator v2 recipes on the CPU: speed and early loss",
        "",
        f"- date: {record['date']}; machine: {record['machine']}",
        f"- command: `{record['command']}` (from `{args.config}`, each variant from scratch)",
        f"- note: {args.note or 'none'}",
        "",
        "| variant | parameters | batch | s/step | images/s | steps/hour | loss (last quarter) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['parameters_m']} M | {r['batch_size']} | {r['s_per_step']} | "
            f"{r['images_per_s']} | {r['steps_per_hour']} | {r['loss_last_quarter']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
