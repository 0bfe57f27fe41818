"""The model card written beside a trained matcher (``README.md``)."""

from __future__ import annotations

import json
from typing import Any

DATA_TERMS = {
    "fs2k": "FS2K (MIT-licensed repository; photos from CASIA-WebFace, stock sites and actors)",
    "synthetic": "synthetic sketches: under the terms of the photos they were drawn from "
    "(CelebA: non-commercial research use only)",
}


def _pct(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * float(value):.{digits}f}%"


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
        "with sketches. " + _use_line(config),
        "",
        "## Network",
        "",
        f"- input: {config.get('input_size', 112)}×{config.get('input_size', 112)} aligned "
        "RGB crops, values 0–255 (facefit's 5-point template); output: "
        f"{config.get('dim', 128)}-d, compare by cosine",
        f"- trained: everything after `{config.get('split')}` "
        f"({len(trained)} tensors: {trained_list}); the rest is SFace as published",
        _files_line(config),
        "",
        "## Training",
        "",
        f"- sources: {source_list or '—'}",
        f"- {data.get('train_pairs', '?')} training pairs in {data.get('classes', '?')} "
        f"classes (one per {data.get('classes_are', 'identity')}); "
        f"{data.get('val_pairs', 0)} FS2K training pairs held out to choose the "
        "epoch; the development split of `facefit.datasets.splits` is never read",
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
        *_dev_section(config.get("dev")),
        *_group_section(config),
        "## Data terms",
        "",
        *[f"- {t}" for t in terms],
        "",
        "Intended use: ranking candidates for a human investigator. A match is a lead, never an "
        "identification.",
        "",
    ]
    return "\n".join(lines)


def _use_line(config: dict[str, Any]) -> str:
    if config.get("shipped"):
        return (
            "facefit ships it: the face encoder `sketch-matcher` uses it when given no "
            "weights (`facefit eval … --modes matcher --matcher sketch-matcher`, "
            "`facefit gallery build --encoder sketch-matcher`, or "
            '`[face_encoder] plugin = "sketch-matcher"`).'
        )
    return (
        "Use it as the face encoder `sketch-matcher` "
        "(`facefit eval … --modes matcher --matcher sketch-matcher --matcher-path DIR`, or "
        '`[face_encoder] plugin = "sketch-matcher"` with `weights = "DIR"`).'
    )


def _files_line(config: dict[str, Any]) -> str:
    shipped = config.get("shipped")
    if shipped:
        return (
            f"- files: `tail.safetensors` ({len(shipped.get('layers', []))} fine-tuned tensors, "
            f"{shipped.get('dtype', 'float16')}) in the facefit package, written into SFace's "
            "graph once and saved in the model cache as `model.onnx` and `model.safetensors` "
            "(`facefit models install`, or the first use of the encoder)"
        )
    return (
        "- files: `model.onnx` (ONNX Runtime), `model.safetensors` (the same weights for the "
        "torch module, `facefit.matcher.load_matcher_torch`)"
    )


def _dev_section(dev: dict[str, Any] | None) -> list[str]:
    """Development-split rank-1, SFace against this matcher, from ``config["dev"]``."""
    if not dev:
        return []
    lines = [
        f"## Development split ({dev.get('scoring', 'person')} level)",
        "",
        f"Split fingerprint `{str(dev.get('fingerprint', '?'))[:16]}`; {dev.get('date', '?')}; "
        f"`{dev.get('command', '')}`. Each cell: photo level / person level (a hit on any "
        "photo of the true person counts).",
        "",
        "| benchmark · probe set | probes | SFace | this matcher |",
        "|---|---|---|---|",
    ]
    for row in dev.get("rank1", []):
        lines.append(
            f"| {row['benchmark']} · {row['probe_set']} | {row['probes']} | "
            f"{_pct(row['sface'][0])} / {_pct(row['sface'][1])} | "
            f"{_pct(row['matcher'][0])} / {_pct(row['matcher'][1])} |"
        )
    return [*lines, ""]


def _group_section(config: dict[str, Any]) -> list[str]:
    """Performance by group: the data's composition, validation and development figures, limits."""
    data = config.get("data", {})
    composition = data.get("composition") or {}
    metrics = config.get("metrics", {})
    baseline, best = metrics.get("val_baseline", {}), metrics.get("val_best", {})
    lines = ["## Performance by group", ""]
    for side, label in (("train", "training pairs"), ("val", "validation pairs")):
        counts = composition.get(side)
        if counts:
            total = sum(counts.values())
            shares = ", ".join(f"{k} {v} ({100 * v / total:.0f}%)" for k, v in counts.items())
            lines.append(f"- {label} by gender (FS2K annotation): {shares}")
    if data.get("balance") and data["balance"] != "none":
        weights = (config.get("settings") or {}).get("style_weights") or {}
        shares = (
            "shares per epoch weighted by style: "
            + ", ".join(f"style {k} ×{w:g}" for k, w in sorted(weights.items()))
            if weights
            else "equal share per epoch"
        )
        lines.append(f"- sampling: balanced by {data['balance']} ({shares})")
    groups = sorted(k.removeprefix("val_rank1_") for k in best if k.startswith("val_rank1_"))
    groups = [g for g in groups if g != "gap"]
    if groups:
        cells = ", ".join(
            f"{g} {_pct(baseline.get('val_rank1_' + g))} → {_pct(best.get('val_rank1_' + g))}"
            for g in groups
        )
        lines.append(f"- validation rank-1 by gender, SFace → this matcher: {cells}")
    dev = config.get("dev") or {}
    if dev.get("groups"):
        lines += [
            "",
            "Development split, 200 sketches against "
            f"{dev.get('groups_gallery', 'the large gallery')}, person level. Gap: best group's "
            "rank-1 minus the worst's, 95% bootstrap interval; FMR/FNMR at the threshold giving "
            "FMR 1e-2 over all probes:",
            "",
            "| encoder | group | probes | rank-1 | FMR | FNMR |",
            "|---|---|---|---|---|---|",
        ]
        for row in dev["groups"]:
            lines.append(
                f"| {row['encoder']} | {row['group']}: {row['value']} | {row['probes']} | "
                f"{_pct(row['rank1'])} | {_pct(row['fmr'], 2)} | {_pct(row['fnmr'])} |"
            )
        lines.append("")
        for row in dev.get("gaps", []):
            lo, hi = row["ci"]
            lines.append(
                f"- {row['encoder']}, {row['group']}: gap {100 * row['gap']:.1f} pts "
                f"[{100 * lo:.1f}, {100 * hi:.1f}] ({row['best']} − {row['worst']})"
            )
        lines += _shortfalls(dev)
    lines += [
        "",
        "Known limits: FS2K's gender label is the only group annotation used in training; "
        "apparent skin tone is estimated from one photo pixel and its darker groups are small "
        "(development figures by skin tone are in `benchmarks/results/`). The groups are small "
        "(about 100 per gender on the development split), so gaps of several points are "
        "within noise: read the intervals. No group was checked for age.",
        "",
    ]
    return lines


def _shortfalls(dev: dict[str, Any]) -> list[str]:
    """The matcher's groups more than 5 points below its overall rank-1, and FMR spreads."""
    rows = [r for r in dev.get("groups", []) if r["encoder"] == "this matcher"]
    overall = next(
        (
            r["matcher"][1]
            for r in dev.get("rank1", [])
            if r["benchmark"].endswith("large-gallery") and r["probe_set"] == "sketch"
        ),
        None,
    )
    lines = []
    if overall is not None:
        low = [r for r in rows if r["rank1"] is not None and r["rank1"] < overall - 0.05]
        for r in low:
            lines.append(
                f"- {r['group']} {r['value']} ({r['probes']} probes): rank-1 "
                f"{_pct(r['rank1'])}, more than 5 points below the overall {_pct(overall)}"
            )
    for group in sorted({r["group"] for r in rows}):
        fmrs = [(r["fmr"], r["value"]) for r in rows if r["group"] == group and r["fmr"]]
        if len(fmrs) >= 2 and min(fmrs)[0] > 0 and max(fmrs)[0] / min(fmrs)[0] > 2:
            (hi, hv), (lo, lv) = max(fmrs), min(fmrs)
            lines.append(
                f"- {group}: the false match rate of {hv} ({_pct(hi, 2)}) is "
                f"{hi / lo:.1f}× that of {lv} ({_pct(lo, 2)}) at the shared threshold"
            )
    return lines
