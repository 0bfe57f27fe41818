"""Text-only faces from FS2K *training* sentences, graded by the attribute judge.

Gate 2 of the generator v2 issue is measured on the development split, so it must not
choose between training recipes. This probe chooses instead: it draws faces from the
descriptions of FS2K training pairs (the training pack's sentences that state a gender)
alone, with the gates' sampler, seeds and guidance, and grades them with the same
attribute judge (trained on real training-split photos only). Several models go through
the same sentences and seeds in one run::

    python benchmarks/text_only_training_probe.py --pack out/pack-64-v2.npz \\
        --models out/gate-models/v2t-15000 out/gate-models/v2u-15000 --names v2t v2u \\
        --out benchmarks/results/text_only_training_probe
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


def training_sentences(pack: Path, count: int, seed: int) -> list[str]:
    """``count`` distinct FS2K training sentences that state a gender, in a seeded order."""
    from facefit.generator.training.data import TrainingPack
    from facefit.text_agreement import parse_description

    d = TrainingPack.load(pack)  # no pickle; a clear error for a missing or bad pack
    index, sources, sentences = d.text_index, d.sources, d.sentences
    rows = sorted(set(index[(sources == "fs2k") & (index >= 0)].tolist()))
    order = np.random.default_rng(seed).permutation(rows)
    stated = [
        str(sentences[i]) for i in order if parse_description(str(sentences[i])).get("gender")
    ]
    return stated[:count]


def agreement(predicted: list[str], truth: list[str | None]) -> dict:
    hits = [p == t for p, t in zip(predicted, truth, strict=True) if t]
    return {"value": round(float(np.mean(hits)), 4) if hits else None, "n": len(hits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", required=True, type=Path, help="the training pack (.npz)")
    parser.add_argument("--models", nargs="+", required=True, help="generator directories")
    parser.add_argument("--names", nargs="+", help="a name per model (default: folder names)")
    parser.add_argument("--count", type=int, default=120, help="sentences (default 120)")
    parser.add_argument("--seed", type=int, default=0, help="sentence order and noise seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True, type=Path, help="output stem (.json, .md)")
    args = parser.parse_args()

    import torch

    from facefit.attribute_judge import JUDGE_PATH, AttributeJudge
    from facefit.generator.gates.runner import GateRunner, GateSettings
    from facefit.generator.loading import load_generator
    from facefit.registry import Registry
    from facefit.text_agreement import parse_description

    torch.set_num_threads(args.threads)
    names = args.names or [Path(m).name for m in args.models]
    registry = Registry.load()
    judge = AttributeJudge.load(JUDGE_PATH)
    grader = registry.create("face_encoder", judge.encoder)
    sentences = training_sentences(args.pack, args.count, args.seed)
    stated = [parse_description(s) for s in sentences]
    settings = GateSettings(backend="onnxruntime", seed=args.seed, batch_size=40)
    rows = []
    for name, path in zip(names, args.models, strict=True):
        runner = GateRunner(load_generator(path), settings, registry=registry)
        faces = runner.sample([runner.conditions(text=s) for s in sentences])
        predicted = judge.judge_faces(grader, faces)
        rows.append(
            {
                "name": name,
                "model": str(path),
                "gender": agreement(predicted["gender"], [t.get("gender") for t in stated]),
                "hair_color": agreement(
                    predicted["hair_color"], [t.get("hair_color") for t in stated]
                ),
            }
        )
        print(name, rows[-1]["gender"], rows[-1]["hair_color"], flush=True)
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "command": "python " + " ".join(sys.argv),
        "sentences": len(sentences),
        "sampling": {
            "sampler": settings.sampler,
            "steps": settings.steps,
            "guidance": settings.guidance,
        },
        "models": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Text-only faces from FS2K training sentences (the recipe choice; not a gate)",
        "",
        f"- command: `{record['command']}`",
        f"- date: {record['date']}; machine: {record['machine']}",
        f"- {len(sentences)} training sentences that state a gender; {settings.sampler}, "
        f"{settings.steps} steps, guidance {settings.guidance}; graded by the shipped attribute judge",
        "",
        "| model | gender agreement | hair colour agreement |",
        "|---|---|---|",
    ]
    for r in rows:
        g, h = r["gender"], r["hair_color"]
        lines.append(
            f"| `{r['name']}` | {g['value']:.1%} (n {g['n']}) | {h['value']:.1%} (n {h['n']}) |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
