"""``facefit fusion``: fit and show the score-fusion weights (:mod:`facefit.fusion`)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from facefit.errors import InputError

ENV_DATA = "FACEFIT_SHARED_DATA"


@click.group("fusion")
def fusion() -> None:
    """Score fusion and calibration of identity rankings."""


@fusion.command("fit")
@click.argument("data", required=False, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Weights file to write (the shipped one is sdk/facefit/fusion/fusion_weights.json).",
)
@click.option(
    "--probe-sets",
    default=None,
    help="Comma-separated evidence combinations, one profile each "
    "(default: sketch,lq8,lq16,sketch+lq8,sketch+text,sketch+text+lq8).",
)
@click.option(
    "--generation",
    is_flag=True,
    help="Run the loop on each calibration probe and fit profiles that weight the "
    "generated candidates too (needs the generator; slow).",
)
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Pipeline config (TOML) for --generation (the generator, sampler, steps).",
)
@click.option(
    "--matcher", default=None, help="Sketch matcher face encoder (default: sketch-matcher)."
)
@click.option(
    "--matcher-path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The matcher's folder (default: its installed default, else SFace for sketches).",
)
@click.option(
    "--distractors/--no-distractors",
    default=True,
    show_default=True,
    help="Fit against the calibration photos plus the 758 other training photos as "
    "distractors, or (--no-distractors) against the 100 calibration photos alone.",
)
@click.option(
    "--size-model",
    type=click.Choice(["fixed", "temperature", "per-source"]),
    default=None,
    help="How the direct profiles depend on the gallery size (default: the shipped choice "
    "with distractors, fixed without). docs/identification.md.",
)
@click.option(
    "--gallery-sizes",
    default=None,
    help="Comma-separated gallery sizes a size model is fitted on (default: 100,200,400,858).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Cross-validation folds, distractor draws.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Probes per set (a quick look)."
)
@click.option(
    "--update",
    is_flag=True,
    help="Keep the profiles of the existing --out that this run does not refit.",
)
@click.option("--force", is_flag=True, help="Replace an existing --out.")
def fit(
    data,
    out,
    probe_sets,
    generation,
    rounds,
    config_path,
    matcher,
    matcher_path,
    distractors,
    size_model,
    gallery_sizes,
    seed,
    limit,
    update,
    force,
) -> None:
    """Fit fusion weights and calibration on DATA's calibration slice (never the dev split).

    DATA is the data folder (default $FACEFIT_SHARED_DATA) with fs2k-train/.
    """
    from facefit.fusion import FusionModel
    from facefit.fusion.slice import (
        DEFAULT_GALLERY_SIZES,
        DEFAULT_PROBE_SETS,
        DEFAULT_SIZE_MODEL,
        fit_calibration_slice,
    )

    data = data or os.environ.get(ENV_DATA)
    if not data:
        raise InputError(f"give the data folder, or set {ENV_DATA}")
    if out.exists() and not (force or update):
        raise InputError(f"--out {out}: exists; pass --update to refit into it or --force")
    if matcher_path is not None and not matcher:
        matcher = "sketch-matcher"
    keep = FusionModel.load(out) if update and out.exists() else None
    config = None
    if config_path is not None:
        from facefit.config import load_config

        config = load_config(config_path)
    sets = [s.strip() for s in probe_sets.split(",") if s.strip()] if probe_sets else None
    if size_model is None:
        size_model = DEFAULT_SIZE_MODEL if distractors and not generation else "fixed"
    sizes = DEFAULT_GALLERY_SIZES
    if gallery_sizes:
        try:
            sizes = tuple(int(n) for n in gallery_sizes.split(",") if n.strip())
        except ValueError:
            raise InputError(f"--gallery-sizes {gallery_sizes!r}: give whole numbers") from None
        if len(sizes) < 2 or min(sizes) < 1:
            raise InputError("--gallery-sizes: give at least two sizes, each at least 1")
    model = fit_calibration_slice(
        data,
        probe_sets=sets or DEFAULT_PROBE_SETS,
        matcher=matcher,
        matcher_options={"weights": str(matcher_path)} if matcher_path else None,
        generation=generation,
        rounds=rounds,
        config=config,
        seed=seed,
        limit=limit,
        keep=keep,
        command=shlex.join(["facefit", *sys.argv[1:]]),
        distractors=distractors,
        size_model=size_model,
        gallery_sizes=sizes,
    )
    model.save(out, force=True)
    click.echo(f"{out}: {len(model.profiles)} profiles")
    _print(model)


@fusion.command("show")
@click.argument("weights", required=False, type=click.Path(exists=True, dir_okay=False))
def show(weights) -> None:
    """Print the profiles of a weights file (default: the shipped one)."""
    from facefit.fusion import FusionModel

    _print(FusionModel.load(weights))


def _print(model) -> None:
    for key in sorted(model.profiles):
        p = model.profiles[key]
        weights = ", ".join(f"{s} {w:.3f}" for s, w in p.weights.items())
        fit = p.fit
        sized = ""
        if p.sized:
            slopes = ", ".join(f"{s} {v:+.3f}" for s, v in p.size_weights.items())
            sized = f"; per log(N/{p.size_reference:g}): {slopes}, offset {p.size_offset:+.3f}"
        click.echo(
            f"  {key}: {weights}; log LR offset {p.log_lr_offset:.3f}{sized}; "
            f"cv top-1 ECE {fit.get('cv_top1_ece')}, {_probes(fit)}"
        )


def _probes(fit: dict) -> str:
    """The calibration probes; a size-aware fit saw each probe once per gallery size."""
    count, sizes = fit.get("probes"), fit.get("gallery_sizes") or []
    if isinstance(count, int) and len(sizes) > 1 and count % len(sizes) == 0:
        return f"{count // len(sizes)} probes × {len(sizes)} gallery sizes"
    return f"{count} probes"
