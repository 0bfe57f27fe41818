"""``facefit demo``: the README's first command — the loop on bundled FS2K evidence, offline."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from facefit.config import Settings
from facefit.settings import default_of

DEMO_STEPS = 20
"""The demo's sampler steps: fewer than a pipeline's default (``Settings.steps``)."""


def _earlier_demo(out: Path) -> bool:
    """Whether ``out`` holds an earlier ``facefit demo``'s output (which a demo replaces)."""
    import json

    try:
        provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(provenance, dict) and provenance.get("command") == ["demo"]


@click.command("demo")
@click.option(
    "--out",
    default="facefit-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder.",
)
@click.option("--probe", "probe_id", help="Which bundled sketch (default: the first).")
@click.option("--rounds", default=default_of(Settings, "rounds"), show_default=True, type=int)
@click.option(
    "--candidates", default=default_of(Settings, "candidates"), show_default=True, type=int
)
@click.option("--steps", default=DEMO_STEPS, show_default=True, type=int)
@click.option("--seed", default=default_of(Settings, "seed"), show_default=True, type=int)
@click.option("--force", is_flag=True, help="Replace --out even if it holds another run's output.")
def demo(
    out: Path,
    probe_id: str | None,
    rounds: int,
    candidates: int,
    steps: int,
    seed: int,
    force: bool,
) -> None:
    """Run the loop on a bundled FS2K sketch + description against a 24-face gallery.

    An earlier demo's output in --out is replaced; any other output only with --force.
    """
    import time

    from facefit.config import PipelineConfig
    from facefit.errors import InputError
    from facefit.pipeline import Pipeline
    from facefit.pipeline.demo import demo_gallery, demo_probes, require_default_model
    from facefit.pipeline.files import run_probe_files
    from facefit.pipeline.output import check_out
    from facefit.registry import Registry

    start = time.perf_counter()
    require_default_model()  # before anything slow: never show output of no model
    force = force or _earlier_demo(out)
    check_out(out, force=force)
    probes = {p.id: p for p in demo_probes()}
    probe = probes[next(iter(probes))] if probe_id is None else probes.get(probe_id)
    if probe is None:
        raise InputError(f"no bundled probe {probe_id!r}; known: {', '.join(probes)}")
    registry = Registry.load()
    config = PipelineConfig().replace_settings(
        rounds=rounds, candidates=candidates, steps=steps, seed=seed
    )
    encoder = registry.create_face_encoder(config.components["face_encoder"].plugin)
    pipeline = Pipeline(config, registry=registry, gallery=demo_gallery(encoder, registry))
    click.echo(f'evidence: sketch {Path(probe.sketch).name} + "{probe.text}"')
    from facefit.pipeline.progress import ProgressBar, ProgressLog, progress_to

    bar = ProgressBar(disable=not sys.stderr.isatty())  # a bar only where a person watches
    try:
        result = run_probe_files(
            pipeline,
            probe,
            out,
            command=["demo"],
            force=force,
            progress=progress_to(bar, ProgressLog()),
        )
    finally:
        bar.close()
    click.echo(
        f"{result.provenance.get('stopped')}; ranked identities (evidence and rounds fused; "
        "raw score, probability):"
    )
    for match in result.top(5):
        chance = "" if match.probability is None else f"  p={match.probability:.3f}"
        click.echo(f"  {match.rank}. {match.identity}  {match.score:.4f}{chance}")
    truth = next((m.rank for m in result.matches if m.identity == probe.id), None)
    click.echo(
        f"the sketch was drawn from {probe.id}'s photo: ranked {truth} of "
        f"{pipeline.gallery.num_identities} (shown after the run; the loop never sees it)"
    )
    click.echo(f"contact sheet: {out / 'contact_sheet.png'}  ({time.perf_counter() - start:.1f} s)")
