"""The model card written beside a trained matcher (``README.md``)."""

from __future__ import annotations

import json
from typing import Any

DATA_TERMS = {
    "fs2k": "FS2K (MIT-licensed repository; photos from CASIA-WebFace, stock sites and actors)",
    "synthetic": "synthetic sketches: under the terms of the photos they were drawn from "
    "(CelebA: non-commercial research use only)",
}


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def model_card(config: dict[str, Any]) -> str:
    """Markdown model card from a matcher's ``config.json`` values."""
    data = config.get("data", {})
    training = config.get("training", {})
    metrics = config.get("metrics", {})
    base = config.get("base", {})
    baseline, best = metrics.get("val_baseline", {}), metrics.get("val_best", {})
    sources = data.get("sources", [])
    terms = [DATA_TERMS["fs2k"]] if any(s.get("kind") == "fs2k" for s in sources) else []
    if any(s.get("kind") == "synthetic" for s in sources):
        terms.append(DATA_TERMS["synthetic"])
    source_list = ", ".join(f"{s['name']} ({s['pairs']} pairs)" for s in sources)
    trained = config.get("trained", [])
    trained_list = ", ".join(trained[:6]) + (" …" if len(trained) > 6 else "")
    lines = [
        "---",
        "library_name: facefit",
        "tags: [face-recognition, sketch-recognition, forensic, onnx]",
        "license: other",
        "---",
        "",
        "# facefit sketch matcher",
        "",
        "An identity encoder for matching forensic sketches to mugshots: SFace "
        f"({base.get('version', 'sface-2021dec')}) with its last layers fine-tuned on "
        "photo–sketch pairs with AdaFace's adaptive-margin loss. Photos and sketches go "
        "through the same network, so a gallery of photos embedded with it can be searched "
        "with sketches. Use it as the face encoder `sketch-matcher` "
        "(`facefit eval … --modes matcher --matcher sketch-matcher --matcher-path DIR`, or "
        '`[face_encoder] plugin = "sketch-matcher"` with `weights = "DIR"`).',
        "",
        "## Network",
        "",
        f"- input: {config.get('input_size', 112)}×{config.get('input_size', 112)} aligned "
        "RGB crops, values 0–255 (facefit's 5-point template); output: "
        f"{config.get('dim', 128)}-d, compare by cosine",
        f"- trained: everything after `{config.get('split')}` "
        f"({len(trained)} tensors: {trained_list}); the rest is SFace as published",
        "- files: `model.onnx` (ONNX Runtime), `model.safetensors` (the same weights for the "
        "torch module, `facefit.matcher.load_matcher_torch`)",
        "",
        "## Training",
        "",
        f"- sources: {source_list or '—'}",
        f"- {data.get('train_pairs', '?')} training pairs in {data.get('classes', '?')} "
        f"classes (one per {data.get('classes_are', 'identity')}); "
        f"{data.get('val_pairs', 0)} FS2K training pairs held out to choose the "
        "epoch; the development split of `facefit.splits` is never read",
        f"- {training.get('epochs', '?')} epochs ({training.get('steps', '?')} steps), "
        f"chosen epoch {training.get('best_epoch', '?')}; "
        f"{training.get('seconds', 0):.0f} s on {training.get('device', '?')}",
        "",
        "```json",
        json.dumps(config.get("settings", {}), indent=2),
        "```",
        "",
        "## Validation (held-out FS2K training pairs, sketch → photo)",
        "",
        "| model | rank-1 | rank-5 | MRR |",
        "|---|---|---|---|",
        f"| SFace (epoch 0) | {_pct(baseline.get('val_rank1'))} | "
        f"{_pct(baseline.get('val_rank5'))} | {baseline.get('val_mrr', float('nan')):.3f} |",
        f"| this matcher | {_pct(best.get('val_rank1'))} | {_pct(best.get('val_rank5'))} | "
        f"{best.get('val_mrr', float('nan')):.3f} |",
        "",
        *(
            [
                "Photo check (CelebA training identities, first photo → second; watched, "
                "not used to choose the epoch): rank-1 "
                f"{_pct(baseline.get('val_photo_rank1'))} with SFace, "
                f"{_pct(best.get('val_photo_rank1'))} with this matcher.",
                "",
            ]
            if data.get("photo_check")
            else []
        ),
        "These pairs choose the epoch, so they flatter the matcher a little; development-split "
        "numbers come from `facefit eval DATA --split dev --modes direct,matcher …`.",
        "",
        "## Data terms",
        "",
        *[f"- {t}" for t in terms],
        "",
        "Intended use: ranking candidates for a human investigator. A match is a lead, never an "
        "identification.",
        "",
    ]
    return "\n".join(lines)
