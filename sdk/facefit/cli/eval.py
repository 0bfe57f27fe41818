"""``facefit eval``: identification benchmarks, modes side by side, one report."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from pathlib import Path

import click

from facefit.errors import InputError

SPLITS = ("dev",)
ENV_DATA = "FACEFIT_SHARED_DATA"


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores}-core CPU ({platform.machine()}, {platform.system()})"


def _command(params: dict) -> str:
    if Path(sys.argv[0]).name in ("facefit", "__main__.py") and "eval" in sys.argv[1:]:
        return shlex.join(["facefit", *sys.argv[1:]])
    parts = ["facefit", "eval", *[str(b) for b in params["benchmarks"]]]
    keys = ("split", "modes", "probe_sets", "limit", "matcher", "matcher_path", "fusion_weights")
    for key in (*keys, "out"):
        if params.get(key) not in (None, ""):
            parts += [f"--{key.replace('_', '-')}", str(params[key])]
    if params.get("large_gallery"):
        parts.append("--large-gallery")
    return shlex.join(parts)


def _load_benchmarks(benchmarks, split, probe_sets, limit, large_gallery=False):
    from facefit.evaluation import readers

    sets = _names(probe_sets) if probe_sets else None
    if split:
        if len(benchmarks) > 1:
            raise InputError("--split takes one data folder (with fs2k-train/ and celeba-subset/)")
        data = benchmarks[0] if benchmarks else os.environ.get(ENV_DATA)
        if not data:
            raise InputError(f"--split {split}: give the data folder, or set {ENV_DATA}")
        kwargs = {"large_gallery": large_gallery}
        if sets is not None:
            fs2k = [s for s in sets if not readers.parse_probe_set(s)["photo"]]
            celeba = [s for s in sets if not readers.parse_probe_set(s)["sketch"]]
            kwargs.update(fs2k_probe_sets=fs2k, celeba_probe_sets=celeba)
        manifests = readers.dev_benchmarks(data, **kwargs)
    else:
        if large_gallery:
            raise InputError("--large-gallery goes with --split dev")
        if not benchmarks:
            raise InputError(
                "give a benchmark (manifest JSON, FS2K or CelebA folder) or --split dev"
            )
        manifests = [readers.read_benchmark(b, sets) for b in benchmarks]
    return [m.select(limit=limit) if limit else m for m in manifests]


@click.command("eval")
@click.argument("benchmarks", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--split", type=click.Choice(SPLITS), help="Evaluate this split of a data folder.")
@click.option(
    "--large-gallery",
    is_flag=True,
    help="With --split dev: also match the FS2K dev probes against all FS2K photos.",
)
@click.option(
    "--modes",
    default="direct",
    show_default=True,
    help="Comma-separated: direct, one-shot, iterative, matcher, fused.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for results.json, results.md, cmc.png, contact sheets.",
)
@click.option(
    "--probe-sets",
    default=None,
    help="Comma-separated probe sets, e.g. sketch,lq16,lq8,text,sketch+text+lq8.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many probes per probe set (a quick look).",
)
@click.option("--detector", default="yunet", show_default=True)
@click.option(
    "--encoder", default="sface", show_default=True, help="Identity encoder of direct mode."
)
@click.option("--matcher", default=None, help="Face-encoder name of the trained sketch matcher.")
@click.option(
    "--matcher-path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="The matcher's weights (its `weights` option): the folder train-matcher wrote.",
)
@click.option(
    "--graders",
    default="dlib,sface",
    show_default=True,
    help="Encoders grading generated faces against the true photo.",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Rounds of the iterative mode.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Pipeline config (TOML) for the generating modes.",
)
@click.option(
    "--contact-sheet",
    "contact_rows",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Probes per probe set on the contact sheets (0: none).",
)
@click.option("--machine", default=None, help="Machine description recorded in the report.")
@click.option("--date", default=None, help="Date recorded in the report (default: today).")
@click.option(
    "--fusion-weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Fusion weights (facefit fusion fit) for the fused and generating modes "
    "(default: the shipped ones).",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--force", is_flag=True, help="Write into an --out that already holds files.")
@click.pass_context
def eval_command(
    ctx,
    benchmarks,
    split,
    large_gallery,
    modes,
    out,
    probe_sets,
    limit,
    detector,
    encoder,
    matcher,
    matcher_path,
    graders,
    rounds,
    config_path,
    contact_rows,
    machine,
    date,
    fusion_weights,
    progress,
    force,
) -> None:
    """Evaluate identification on BENCHMARKS (manifest JSON, FS2K or CelebA folders).

    With --split dev, BENCHMARKS is the data folder (default $FACEFIT_SHARED_DATA) and
    its development split (facefit.datasets.splits) is evaluated: FS2K sketch/low-quality/text
    probes against its photos, CelebA photos against each identity's first photo.
    """
    from facefit.evaluation import create_modes, evaluate, write_report

    params = dict(
        benchmarks=benchmarks,
        split=split,
        large_gallery=large_gallery or None,
        modes=modes,
        probe_sets=probe_sets,
        limit=limit,
        matcher=matcher,
        matcher_path=matcher_path,
        fusion_weights=fusion_weights,
        out=out,
    )
    if matcher_path is not None and not matcher:
        raise InputError("--matcher-path needs --matcher NAME (e.g. --matcher sketch-matcher)")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder; choose a new --out folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(  # before anything is read: never lose a run to it
            f"--out {out}: already holds files; choose a new --out folder, or pass --force "
            "to write this report over them"
        )
    mode_names = _names(modes)
    create_modes(mode_names)  # an unknown mode fails before anything is read
    manifests = _load_benchmarks(benchmarks, split, probe_sets, limit, large_gallery)
    config = None
    if config_path is not None:
        from facefit.config import load_config

        config = load_config(config_path)
    obj = ctx.find_root().obj  # a registry passed in by a test or an embedding app
    registry = obj.get("registry") if isinstance(obj, dict) else None
    run = evaluate(
        manifests,
        mode_names,
        detector=detector,
        encoder=encoder,
        matcher=matcher,
        matcher_options={"weights": str(matcher_path)} if matcher_path is not None else None,
        graders=_names(graders),
        rounds=rounds,
        config=config,
        progress=progress and sys.stderr.isatty(),  # no bar into a file or pipe
        registry=registry,
        fusion_weights=str(fusion_weights) if fusion_weights is not None else None,
    )
    written = write_report(
        run,
        out,
        command=_command(params),
        date=date or _dt.date.today().isoformat(),
        machine=machine or _machine(),
        contact_rows=contact_rows,
    )
    click.echo(written["markdown"].read_text(encoding="utf-8"))
    for kind, path in written.items():
        click.echo(f"{kind}: {path}")
