"""Write an evaluation run: JSON, a markdown table, a CMC plot and contact sheets.

Files written by :func:`write_report` into the output folder:

- ``results.json`` — settings, environment, benchmarks, every mode × probe set with
  its metrics (rank-1/5/10, CMC, TAR at FAR, group breakdown, seconds per probe);
  each set of metrics says its ``scoring`` level: the flat ones are photo level, and a
  benchmark that declares persons adds a ``person`` block at person level;
- ``probes.jsonl`` — one line per probe and mode: rank (and ``person_rank``), top
  identities, error; a probe with several sketches, frames or descriptions adds
  ``evidence``, how many of each it has (``{"sketch": 2, "text": 1}``);
- ``results.md`` — the same as tables a person reads, each table naming its level;
- ``cmc.png`` — CMC curves, one panel per benchmark (person level dashed);
- ``reliability.png`` — where a mode gives calibrated probabilities (``fused``, and the
  generating modes with fitted weights): top-1 reliability diagram; results.json and
  results.md give each one's expected calibration error (:mod:`.calibration`);
- ``contact-<benchmark>-<mode>.png`` — the first probes of each set: evidence,
  candidates (generating modes), the true identity's photo, the top-3 hits.

Contact sheets show real faces: keep them out of version control.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from facefit.evaluation.calibration import calibration_markdown, plot_reliability
from facefit.evaluation.contact_sheet import contact_sheet
from facefit.evaluation.runner import BenchmarkInfo, EvalRun, ModeResult
from facefit.files import atomic_write_text

__all__ = ["contact_sheet", "plot_cmc", "to_json", "to_markdown", "write_report"]

FORMAT = "facefit-eval"


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _evidence(result: ModeResult) -> str:
    words = []
    for modality in result.modalities:
        if modality == "lq" and result.lq_made_at:
            words.append(f"lq made from the true photo at {result.lq_made_at}×{result.lq_made_at}")
        else:
            words.append({"reference": "photo"}.get(modality, modality))
    text = " + ".join(words)
    if result.ignored:
        text += f" ({', '.join(result.ignored)} not used)"
    return text


def _result_json(result: ModeResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "benchmark": result.benchmark,
        "mode": result.mode,
        "probe_set": result.probe_set,
        "status": result.status,
        "evidence": list(result.modalities),
        "lq_made_at": result.lq_made_at,
        "probes": result.probes,
    }
    if result.status != "ok":
        data["reason"] = result.reason
        return data
    data.update(
        {
            "encoder": result.encoder,
            "ignored": list(result.ignored),
            "seconds_per_probe": _round(result.seconds_per_probe),
            **result.metrics.to_json(),
            "notes": result.notes,
            "errors": result.errors,
        }
    )
    if result.person_metrics is not None:
        data["person"] = result.person_metrics.to_json()
    if result.calibration is not None:
        data["calibration"] = result.calibration
    if result.grades:
        data["identity_cosine"] = {
            k: None if v is None else round(v, 4) for k, v in result.grades.items()
        }
    return data


def to_json(
    run: EvalRun, *, command: str | None = None, date: str | None = None, machine: str | None = None
) -> dict[str, Any]:
    """The run as JSON data (no per-probe rows: see :func:`probe_rows`)."""
    return {
        "format": FORMAT,
        "version": 1,
        "date": date,
        "machine": machine,
        "command": command,
        "scoring": _levels(run),
        "settings": run.settings,
        "environment": run.environment,
        "modes": run.modes,
        "benchmarks": [vars(b) for b in run.benchmarks],
        "results": [_result_json(r) for r in run.results],
    }


def _levels(run: EvalRun) -> list[str]:
    """The scoring levels the run reports: photo, and person where a benchmark has persons."""
    return ["photo", "person"] if any(b.persons for b in run.benchmarks) else ["photo"]


def probe_rows(run: EvalRun):
    """One JSON-able dict per probe and mode that ran."""
    for result in run.results:
        if result.status != "ok":
            continue
        identities = run.galleries[result.benchmark][result.encoder]["identities"]
        person = result.person_metrics
        person_ranks = person.ranks if person is not None else [None] * len(result.outcomes)
        for outcome, rank, person_rank in zip(result.outcomes, result.metrics.ranks, person_ranks):
            counts = outcome.probe.evidence_counts
            yield {
                "benchmark": result.benchmark,
                "mode": result.mode,
                "probe_set": result.probe_set,
                "probe": outcome.probe.id,
                "identity": outcome.probe.identity,
                "rank": int(rank),
                **({"person_rank": int(person_rank)} if person_rank is not None else {}),
                "top": [
                    {"identity": identities[j], "score": round(s, 4)} for j, s, _ in outcome.top[:5]
                ],
                "seconds": round(outcome.seconds, 4),
                "error": outcome.error,
                "notes": list(outcome.notes),
                **({"evidence": counts} if max(counts.values(), default=1) > 1 else {}),
                **({"identity_cosine": outcome.grades} if outcome.grades else {}),
            }


def to_markdown(
    run: EvalRun, *, command: str | None = None, date: str | None = None, machine: str | None = None
) -> str:
    """Tables: one per benchmark, then rank-1 by attribute group."""
    lines = ["# facefit eval", ""]
    facts = []
    if date:
        facts.append(f"Date: {date}")
    if machine:
        facts.append(f"Machine: {machine}")
    s = run.settings
    facts.append(f"Detector `{s['detector']}`, identity encoder `{s['encoder']}`")
    if any(r.grades for r in run.results):
        facts.append(f"graders {', '.join(f'`{g}`' for g in s['graders'])}")
    lines.append(" · ".join(facts) + ".")
    if command:
        lines += ["", f"Command: `{command}`"]
    unavailable = {k: v for k, v in run.modes.items() if not v["available"]}
    if unavailable:
        lines += ["", "Modes not available here (reported, never approximated):", ""]
        lines += [f"- `{name}`: {info['reason']}" for name, info in unavailable.items()]
    generating = any(r.grades for r in run.results)
    for bench in run.benchmarks:
        lines += _benchmark_section(run, bench, generating)
    lines += calibration_markdown(run.results)
    return "\n".join(lines) + "\n"


def _benchmark_section(run: EvalRun, bench: BenchmarkInfo, generating: bool) -> list[str]:
    """One benchmark: what it is, its split, a table per scoring level, notes, groups."""
    s = run.settings
    lines = ["", f"## {bench.name}", ""]
    gallery = f"{bench.gallery_images} gallery photos of {bench.identities} identities"
    if bench.distractor_images:
        gallery += f" + {bench.distractor_images} distractors"
    lines.append(f"{bench.description}. {gallery}.")
    for encoder, info in bench.enrolment.items():
        if info["failures"]:
            lines.append(
                f"Enrolment with `{encoder}`: {len(info['failures'])} photo(s) without a usable "
                f"face left out; {info['identities_without_image']} identities have no photo."
            )
    if bench.split:
        fingerprint = bench.split.get("fingerprint", "")
        lines.append(
            f"Split: `{bench.split.get('name', '?')}`"
            + (f", fingerprint `{fingerprint[:16]}`." if fingerprint else ".")
        )
    results = [r for r in run.results if r.benchmark == bench.name and r.status == "ok"]
    lines += ["", _level_line("photo", bench), ""]
    lines += _metrics_table(results, "photo", generating, s["graders"])
    if bench.persons:
        lines += ["", _level_line("person", bench), ""]
        lines += _metrics_table(results, "person", False, s["graders"])
    notes = _benchmark_notes(run, bench)
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    for level in bench.scoring:
        lines += _group_table(results, level)
    return lines


def _benchmark_notes(run: EvalRun, bench: BenchmarkInfo) -> list[str]:
    """What the tables do not show: modes not run, per-probe notes and failures."""
    notes = []
    for r in run.results:
        if r.benchmark != bench.name or r.status == "unavailable":
            continue
        if r.status == "unsupported":
            notes.append(f"`{r.mode}` on `{r.probe_set}`: not run — {r.reason}.")
            continue
        for note, count in r.notes.items():
            notes.append(
                f"`{r.mode}` on `{r.probe_set}`: {note} ({count}/{r.metrics.probes} probes)."
            )
        for kind, count in r.errors.items():
            notes.append(
                f"`{r.mode}` on `{r.probe_set}`: {count} probe(s) failed ({kind}), counted as misses."
            )
    return notes


def _metrics_of(result: ModeResult, level: str):
    return result.person_metrics if level == "person" else result.metrics


def _level_line(level: str, bench: BenchmarkInfo) -> str:
    """The sentence above a table that says which scoring level it shows."""
    if level == "person":
        return (
            f"**Person level** ({bench.persons} persons): identities of one person are one — "
            "a top hit on any photo of the true person counts, and each person takes one "
            "rank (its best photo)."
        )
    if bench.persons:
        return "**Photo level**: every gallery identity counts on its own."
    return (
        "**Photo level**: every gallery identity counts on its own (the benchmark "
        "declares no persons)."
    )


def _metrics_table(
    results: list[ModeResult], level: str, generating: bool, graders: list[str]
) -> list[str]:
    head = ["mode", "probe set", "evidence", "probes", "failed"]
    head += ["rank-1", "rank-5", "rank-10", "TAR@FAR=1e-2", "TAR@FAR=1e-3"]
    gapped = sorted({g for r in results if (m := _metrics_of(r, level)) for g in m.group_fairness})
    head += [f"rank-1 gap ({g})" for g in gapped]
    if level == "photo":
        head.append("s/probe")
    if generating:
        head += [f"cos {g}" for g in graders]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        m = _metrics_of(r, level)
        if m is None:
            continue
        row = [r.mode, r.probe_set, _evidence(r), str(m.probes), str(m.failed)]
        row += [_pct(m.rank_rates[k]) for k in (1, 5, 10)]
        row += [_pct(m.tar[1e-2]), _pct(m.tar[1e-3])]
        row += [_gap_cell(m.group_fairness.get(g, {}).get("rank1_gap")) for g in gapped]
        if level == "photo":
            row.append("—" if r.seconds_per_probe is None else f"{r.seconds_per_probe:.3f}")
        if generating:
            row += ["—" if r.grades.get(g) is None else f"{r.grades[g]:.3f}" for g in graders]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _group_table(results: list[ModeResult], level: str) -> list[str]:
    results = [r for r in results if (m := _metrics_of(r, level)) is not None and m.groups]
    if not results:
        return []
    columns = sorted(
        {(g, v) for r in results for g, vs in _metrics_of(r, level).groups.items() for v in vs}
    )
    lines = ["", f"Rank-1 by group, {level} level (95% Wilson interval, probes):", ""]
    lines.append("| mode · probe set | " + " | ".join(f"{g}: {v}" for g, v in columns) + " |")
    lines.append("|" + "---|" * (len(columns) + 1))
    for r in results:
        cells = []
        for g, v in columns:
            cell = _metrics_of(r, level).groups.get(g, {}).get(v)
            if cell is None:
                cells.append("—")
            elif not cell["probes"]:
                cells.append("no probes")
            else:
                lo, hi = cell["rank1_ci95"]
                cells.append(
                    f"{_pct(cell['rank1'])} [{100 * lo:.0f}–{100 * hi:.0f}] n={cell['probes']}"
                )
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    return lines + _error_rate_table(results, level)


def _gap_cell(gap: dict | None) -> str:
    """``11.6 pts [2.0, 21.3] (male − female)``; ``—`` where no gap could be measured."""
    if not gap or gap.get("gap") is None:
        return "—"
    lo, hi = gap["ci"]
    return (
        f"{100 * gap['gap']:.1f} pts [{100 * lo:.1f}, {100 * hi:.1f}] "
        f"({gap['best']} − {gap['worst']})"
    )


def _error_rate_table(results: list[ModeResult], level: str) -> list[str]:
    """FMR / FNMR per group value at the threshold giving the overall FMR target."""
    rows = []
    for r in results:
        for name, block in sorted(_metrics_of(r, level).group_fairness.items()):
            rates = block["error_rates"]
            for value, cell in rates["by_value"].items():
                if not cell["probes"]:
                    fmr = fnmr = "no probes"
                else:
                    fmr, fnmr = _rate(cell["fmr"]), _rate(cell["fnmr"])
                rows.append(f"| {r.label} | {name}: {value} | {cell['probes']} | {fmr} | {fnmr} |")
    if not rows:
        return []
    target = next(
        b["error_rates"]["fmr_target"]
        for r in results
        for b in _metrics_of(r, level).group_fairness.values()
    )
    return [
        "",
        f"False match / false non-match rate by group, {level} level, at the threshold that "
        f"gives FMR {target:g} over all probes (impostor comparisons grouped by the probe):",
        "",
        "| mode · probe set | group | probes | FMR | FNMR |",
        "|---|---|---|---|---|",
        *rows,
    ]


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def plot_cmc(run: EvalRun, path: str | Path) -> Path | None:
    """CMC curves, one panel per benchmark; None when nothing ran."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    benches = [
        b.name
        for b in run.benchmarks
        if any(r.benchmark == b.name and r.status == "ok" for r in run.results)
    ]
    if not benches:
        return None
    fig, axes = plt.subplots(1, len(benches), figsize=(5.2 * len(benches), 4.2), squeeze=False)
    for ax, name in zip(axes[0], benches):
        for r in run.results:
            if r.benchmark != name or r.status != "ok":
                continue
            curve = r.metrics.cmc
            line = ax.plot(
                np.arange(1, len(curve) + 1),
                100 * curve,
                marker="o" if len(curve) <= 12 else None,
                markersize=3,
                label=f"{r.label} (r1 {_pct(r.metrics.rank1)})",
            )[0]
            if r.person_metrics is not None:
                person = r.person_metrics.cmc
                ax.plot(
                    np.arange(1, len(person) + 1),
                    100 * person,
                    linestyle="--",
                    color=line.get_color(),
                    label=f"{r.label}, person level (r1 {_pct(r.person_metrics.rank1)})",
                )
        identities = next(b.identities for b in run.benchmarks if b.name == name)
        ax.set_title(f"{name} ({identities} identities)")
        ax.set_xlabel("rank")
        ax.set_ylabel("identification rate (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    run: EvalRun,
    out: str | Path,
    *,
    command: str | None = None,
    date: str | None = None,
    machine: str | None = None,
    contact_rows: int = 4,
) -> dict[str, Path]:
    """Write every output file into ``out``; returns them by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    meta = {"command": command, "date": date, "machine": machine}
    written["json"] = atomic_write_text(
        out / "results.json", json.dumps(to_json(run, **meta), indent=1) + "\n"
    )
    rows = "".join(json.dumps(row) + "\n" for row in probe_rows(run))
    written["probes"] = atomic_write_text(out / "probes.jsonl", rows)
    written["markdown"] = atomic_write_text(out / "results.md", to_markdown(run, **meta))
    cmc = plot_cmc(run, out / "cmc.png")
    if cmc:
        written["cmc"] = cmc
    reliability = plot_reliability(run.results, out / "reliability.png")
    if reliability:
        written["reliability"] = reliability
    if contact_rows > 0:
        for bench in run.benchmarks:
            for mode in dict.fromkeys(r.mode for r in run.results if r.status == "ok"):
                sheet = contact_sheet(
                    run,
                    bench.name,
                    mode,
                    out / f"contact-{bench.name}-{mode}.png",
                    rows_per_set=contact_rows,
                )
                if sheet:
                    written[f"contact {bench.name} {mode}"] = sheet
    return written
