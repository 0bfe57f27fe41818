"""Running gates 1–4 for several generators side by side, and writing the report.

:func:`run_gates` measures every model on the same development items with the same
seeds, plus the model-independent reference lines (the judge's accuracy on real
photos, the artists' own sketches, real photos at the generator's resolution).
:func:`write_report` writes ``STEM.json`` and ``STEM.md`` atomically, refusing to
overwrite without ``force``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from facefit.errors import InputError
from facefit.generator.gates import measure
from facefit.generator.gates.devset import DevData, spread
from facefit.generator.gates.runner import GateRunner, GateSettings

log = logging.getLogger(__name__)

__all__ = ["GATES", "markdown", "run_gates", "write_report"]

GATES = ("1_influence", "2_text_only", "3_identity_only", "4_reference_sketch")


def _images_per_model(runner: GateRunner, n_fs2k: int, n_celeba: int) -> int:
    swaps = 3 if runner.has_reference_image else 2
    return n_fs2k * (1 + swaps) + n_fs2k + n_celeba + 3 * n_fs2k


def _model_record(name: str, path: str, model: Any) -> dict[str, Any]:
    c = model.config
    return {
        "name": name,
        "path": str(path),
        "conditioning": c.conditioning,
        "reference_image": bool(c.reference_image),
        "prediction_type": c.prediction_type,
        "image_size": int(c.image_size),
        "parameters": int(model.parameter_count()),
    }


def _references(data: DevData, items, probes, judge, grader, filter_encoder, sizes):
    """What does not depend on the model: the judge on real photos, galleries, artists."""
    fs2k, celeba = data.fs2k, data.celeba
    celeba_gallery = measure._embed(grader, celeba.crop(grader.input_size))
    photo_vectors = filter_encoder.embed(fs2k.photos.crop(filter_encoder.input_size))
    refs = {
        "judge_real_accuracy": measure.judge_real_accuracy(judge, grader, fs2k, items),
        "artist_sketches": measure.sketch_scores(
            fs2k.sketches[items], items, filter_encoder, photo_vectors, fs2k.photos.persons
        ),
        "real_photo_identity_rank1": {
            str(s): measure.real_identity_rank1(celeba, probes, grader, celeba_gallery, s)
            for s in sizes
        },
    }
    return refs, celeba_gallery, photo_vectors


def run_gates(
    models: Sequence[tuple[str, str | Path, Any]],
    data: DevData,
    settings: GateSettings,
    *,
    judge: Any,
    registry: Any = None,
    grader: Any = None,
    filter_encoder: Any = None,
    backend_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Gates 1–4 for each ``(name, path, model)`` on ``data``; the report as a dict.

    ``grader`` (default: the judge's encoder, dlib) grades gates 2 and 3;
    ``filter_encoder`` (default ``sface``) is augment's identity filter for gate 4;
    ``backend_options`` go to the denoiser backend (:class:`GateRunner`).
    """
    from tqdm import tqdm

    from facefit.registry import Registry

    if not models:
        raise InputError("no generator given; pass --models DIR [DIR …]")
    registry = registry or Registry.load()
    grader = grader or registry.create("face_encoder", judge.encoder)
    filter_encoder = filter_encoder or registry.create("face_encoder", "sface")
    items = spread(len(data.fs2k), settings.limit)
    probes = measure.celeba_probes(data.celeba, settings.celeba_per_identity, settings.limit)
    if len(items) < 2 or not probes:
        raise InputError(
            f"the development data has {len(items)} FS2K pairs and {len(probes)} CelebA probes "
            "with a second photo; the gates need at least 2 and 1"
        )
    sizes = sorted({int(m.image_size) for _, _, m in models})
    refs, gallery, photo_vectors = _references(
        data, items, probes, judge, grader, filter_encoder, sizes
    )
    records = []
    for name, path, model in models:
        runner = GateRunner(model, settings, registry=registry, backend_options=backend_options)
        total = _images_per_model(runner, len(items), len(probes))
        with tqdm(total=total, desc=f"gates {name}", unit="face", disable=not progress) as bar:
            runner.progress = bar.update
            record = _model_record(name, path, model)
            record["gates"], record["seconds"] = _measure_model(
                runner,
                data,
                items,
                probes,
                judge,
                grader,
                filter_encoder,
                gallery,
                photo_vectors,
                refs,
            )
        record["pass"] = all(record["gates"][g]["pass"] for g in GATES)
        records.append(record)
    return {
        "settings": {**asdict(settings), "fs2k_items": len(items), "celeba_probes": len(probes)},
        "split": data.split,
        "judge": {**judge.meta, "encoder": judge.encoder, "crop_size": judge.crop_size},
        "references": refs,
        "models": records,
    }


def _measure_model(
    runner, data, items, probes, judge, grader, filter_encoder, gallery, photo_vectors, refs
):
    seconds: dict[str, float] = {}
    gates: dict[str, Any] = {}
    real_rank1 = refs["real_photo_identity_rank1"][str(runner.image_size)]
    steps = (
        ("1_influence", lambda: measure.influence_gate(runner, data.fs2k, items)),
        (
            "2_text_only",
            lambda: measure.text_only_gate(
                runner, data.fs2k, items, judge, grader, refs["judge_real_accuracy"]
            ),
        ),
        (
            "3_identity_only",
            lambda: measure.identity_only_gate(
                runner, data.celeba, probes, grader, gallery, real_rank1
            ),
        ),
        (
            "4_reference_sketch",
            lambda: measure.reference_sketch_gate(
                runner, data.fs2k, items, filter_encoder, photo_vectors
            ),
        ),
    )
    for gate, run in steps:
        start = time.perf_counter()
        gates[gate] = run()
        seconds[gate] = round(time.perf_counter() - start, 1)
        log.info("%s: %s", gate, "PASS" if gates[gate]["pass"] else "FAIL")
    return gates, seconds


# -- writing --------------------------------------------------------------------------------


def write_report(report: dict[str, Any], stem: str | Path, *, force: bool = False) -> list[Path]:
    """Write ``STEM.json`` and ``STEM.md``; refuses to overwrite either unless ``force``."""
    import json

    from facefit.files import atomic_write_bytes

    stem = Path(stem)
    paths = [stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise InputError(f"{', '.join(existing)} exist; pass --force to overwrite them")
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(paths[0], (json.dumps(report, indent=1) + "\n").encode("utf-8"))
    atomic_write_bytes(paths[1], markdown(report).encode("utf-8"))
    return paths


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "FAIL"


def _pct(r: dict[str, Any] | None) -> str:
    if not r or r.get("value") is None:
        return "–"
    low, high = r["ci95"]
    return f"{100 * r['value']:.1f}% [{100 * low:.0f}–{100 * high:.0f}] (n {r['n']})"


def _influence_rows(models: list[dict]) -> list[list[str]]:
    rows = []
    for cond in ("identity", "text", "reference"):
        samples, x0 = [], []
        for m in models:
            v = m["gates"]["1_influence"][cond]
            if "na" in v:
                samples.append(f"n/a ({v['na']})")
                x0.append("n/a")
                continue
            samples.append(f"{v['samples']:.2f} {_verdict(v['pass'])}")
            x0.append(" / ".join(f"{v['x0'][str(t)]:.2f}" for t in measure.X0_TIMESTEPS))
        target = f"≥ {measure.INFLUENCE_TARGET:g}/255"
        rows.append(["1 influence", f"{cond}: samples, mean abs change /255", target, *samples])
        times = "/".join(str(t) for t in measure.X0_TIMESTEPS)
        rows.append(["", f"{cond}: x̂₀ change at t = {times}", "report", *x0])
    return rows


def _text_rows(models: list[dict], refs: dict) -> list[list[str]]:
    rows = []
    for head, word in (("gender", "gender"), ("hair_color", "hair colour")):
        real = refs["judge_real_accuracy"][head]
        g = models[0]["gates"]["2_text_only"][head]
        target = (
            f"≥ {g['share_of_real']:.2f} × {100 * real['value']:.1f}% = {100 * g['target']:.1f}%"
            if g["target"] is not None
            else "–"
        )
        cells = [
            f"{_pct(m['gates']['2_text_only'][head]['agreement'])} "
            f"{_verdict(m['gates']['2_text_only'][head]['pass'])}"
            for m in models
        ]
        rows.append(["2 text only", f"{word} agreement (judge)", target, *cells])
    return rows


def _identity_rows(models: list[dict]) -> list[list[str]]:
    gate = [m["gates"]["3_identity_only"] for m in models]
    n_ids = gate[0]["identities"]
    rows = [
        [
            "3 identity only",
            f"dlib rank-1 among {n_ids} identities' other photos",
            f"≥ {100 * measure.IDENTITY_RANK1_TARGET:.0f}% (chance {100 * gate[0]['chance']:.1f}%)",
            *[f"{_pct(g['rank1'])} {_verdict(g['pass'])}" for g in gate],
        ],
        [
            "",
            "the probe photo itself at the generator's size",
            "reference",
            *[_pct(g.get("real_photo_rank1")) for g in gate],
        ],
    ]
    return rows


def _sketch_rows(models: list[dict], refs: dict) -> list[list[str]]:
    artists = refs["artist_sketches"]
    gate = [m["gates"]["4_reference_sketch"] for m in models]
    rows = []
    for key, target, word in (
        (
            "filter_pass",
            measure.SKETCH_FILTER_TARGET,
            f"pass augment's filter (SFace cos ≥ {measure.FILTER_COSINE})",
        ),
        ("rank1", measure.SKETCH_RANK1_TARGET, "SFace rank-1 among the dev photos"),
    ):
        ok = [g[key]["value"] is not None and g[key]["value"] >= target for g in gate]
        rows.append(
            [
                "4 reference → sketch",
                word,
                f"≥ {100 * target:.0f}% (artists' sketches: {_pct(artists[key])})",
                *[f"{_pct(g[key])} {_verdict(o)}" for g, o in zip(gate, ok)],
            ]
        )
    styles = sorted(gate[0]["per_style"])
    rows.append(
        [
            "",
            "per style " + ", ".join(styles) + ": filter / rank-1",
            "report",
            *[
                "; ".join(
                    f"{100 * (g['per_style'][s]['filter_pass']['value'] or 0):.0f}% / "
                    f"{100 * (g['per_style'][s]['rank1']['value'] or 0):.0f}%"
                    for s in styles
                )
                for g in gate
            ],
        ]
    )
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page: setting, then one table, a column per model."""
    models = report["models"]
    s, split, judge = report["settings"], report["split"], report["judge"]
    real = report["references"]["judge_real_accuracy"]
    lines = [
        "# Generator gates 1–4 on the development split",
        "",
        f"- command: `{report.get('command', '')}`",
        f"- date: {report.get('date', '')}; machine: {report.get('machine', '')}",
        f"- split: FS2K development fingerprint `{split.get('fs2k_dev_fingerprint', '')[:16]}…` "
        f"({split.get('fs2k_used')} of {split.get('fs2k_dev_pairs')} pairs with a face), CelebA "
        f"`{split.get('celeba_dev_fingerprint', '')[:16]}…` ({split.get('celeba_used')} of "
        f"{split.get('celeba_dev_photos')} photos of {split.get('celeba_dev_identities')} "
        f"identities); probes used: {s['fs2k_items']} FS2K pairs, {s['celeba_probes']} CelebA "
        f"photos ({s['celeba_per_identity'] or 'all'} per identity)"
        + (f"; **quick run, --limit {s['limit']}**" if s.get("limit") else ""),
        f"- sampling: `{s['sampler']}`, {s['steps']} steps, guidance {s['guidance']:g}, "
        f"`{s['backend']}` backend, batches of {s['batch_size']}, item i from seed "
        f"{s['seed']} + i (the same in every model and condition)",
        f"- judge: {judge.get('file', 'attribute_judge_dlib.json')} ({judge['encoder']} "
        f"descriptors at {judge['crop_size']} px; {judge.get('trained_on', '')}); on the real "
        f"dev photos: gender {_pct(real['gender'])}, hair colour {_pct(real['hair_color'])}",
        "",
        "| gate | measure | target | " + " | ".join(f"`{m['name']}`" for m in models) + " |",
        "|---|---|---|" + "---|" * len(models),
    ]
    rows = _influence_rows(models) + _text_rows(models, report["references"])
    rows += _identity_rows(models) + _sketch_rows(models, report["references"])
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        "| gate | " + " | ".join(f"`{m['name']}`" for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for gate in GATES:
        cells = [_verdict(m["gates"][gate]["pass"]) for m in models]
        lines.append(f"| {gate.replace('_', ' ', 1)} | " + " | ".join(cells) + " |")
    lines.append("| **all four** | " + " | ".join(_verdict(m["pass"]) for m in models) + " |")
    lines += ["", "Models:", ""]
    for m in models:
        secs = ", ".join(f"{g} {v:.0f} s" for g, v in m["seconds"].items())
        lines.append(
            f"- `{m['name']}`: {m['path']} — {m['conditioning']}, reference image "
            f"{'yes' if m['reference_image'] else 'no'}, {m['prediction_type']}, "
            f"{m['parameters'] / 1e6:.1f} M parameters, {m['image_size']} px; {secs}"
        )
    lines += [
        "",
        "Gate 1 swaps one condition for a partner pair's (another person, another sentence) "
        "with the same seeds; its base evidence is the pair's sentence, identity embedding and "
        "aligned photo as the reference image. x̂₀ is the conditional prediction for the pair's "
        "photo noised to t. Gate 2 grades faces made from a sentence alone; gate 3 faces made "
        "from one photo's SFace embedding alone; gate 4 sketches made from the photo as the "
        "reference (embedding and image) in each FS2K style. Intervals are 95% Wilson. "
        "Produced by `scripts/generator_gates.py` (docs/generator.md, Gates).",
    ]
    return "\n".join(lines) + "\n"
