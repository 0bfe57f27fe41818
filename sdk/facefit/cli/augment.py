"""``facefit augment``: mugshots in, an FS2K-format folder of synthetic sketches out.

facefit augment mugshots/ --out sketches/ --per-identity 6 --styles 0,2
facefit augment photos/ --identities ids.csv --out sketches/ --style-prompt "a man with a beard"
facefit augment mugshots.gallery --out sketches/ --ray auto        # on a Ray cluster
facefit augment --source celeba-train --source fs2k-train --data ../shared/data \
    --per-mugshot 1 --out out/synthetic                             # the matcher's photos
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from facefit.augment.plan import BACKENDS, AugmentSettings
from facefit.settings import default_of

__all__ = ["augment_command"]

LISTED = 20
"""How many dropped identities or skipped mugshots are named on the console."""


def _registry(ctx: click.Context) -> Any:
    """The registry in ``ctx.obj["registry"]`` (tests, embedding apps), else the installed one."""
    obj = ctx.find_root().obj
    if isinstance(obj, dict) and obj.get("registry") is not None:
        return obj["registry"]
    from facefit.registry import Registry

    return Registry.load()


def _summary(report: Any) -> None:
    manifest, counts = report.manifest, report.counts
    click.echo(
        f"{report.out}: kept {counts['kept']} of {counts['generated']} sketches made for "
        f"{counts['identities']} identities; dropped {counts['dropped']} below identity "
        f"cosine {counts['min_identity_cosine']:g}; skipped {counts['mugshots_skipped']} of "
        f"{counts['mugshots']} mugshots ({report.made} shards made now, "
        f"{report.already_done} already done)"
    )
    styles = manifest.get("per_style", {})
    if styles:
        shown = ", ".join(
            f"style {s}: kept {e['kept']}, dropped {e['dropped']}" for s, e in styles.items()
        )
        click.echo(f"  by style: {shown}")
    conditions = report.job.description["model"].get("conditions")
    if conditions:
        click.echo(f"  conditions: {', '.join(conditions)}; backend {report.job.settings.backend}")
    dropped = report.dropped_by_identity
    if dropped:
        shown = ", ".join(f"{i} {n}" for i, n in list(dropped.items())[:LISTED])
        more = f", … {len(dropped) - LISTED} more" if len(dropped) > LISTED else ""
        click.echo(f"  dropped per identity: {shown}{more}")
    for item in manifest["skipped"][:LISTED]:
        click.echo(f"  skipped {item['key']} ({item['identity']}): {item['reason']}", err=True)
    if len(manifest["skipped"]) > LISTED:
        click.echo(f"  … {len(manifest['skipped']) - LISTED} more skipped", err=True)
    empty = counts["identities_without_sketches"]
    if empty:
        click.echo(f"  {empty} identities got no sketch (all in manifest.json)", err=True)


@click.command("augment")
@click.argument(
    "mugshots", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(["celeba-train", "fs2k-train"]),
    help="Instead of MUGSHOTS: the photos the sketch matcher trains on, from --data "
    "(every photo of the CelebA training identities; the FS2K training pairs without "
    "the calibration slice). Repeat for both.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The data folder (../shared/data): read by --source, and with MUGSHOTS used to "
    "refuse any development or calibration photo.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (FS2K format); rerun with the same settings to resume.",
)
@click.option(
    "--identities",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CSV naming each image's identity (paths relative to MUGSHOTS); "
    "default: MUGSHOTS/<identity>/<image>, or a gallery directory's own records.",
)
@click.option("--image-column", help="CSV column of image paths (default: image, path, file…).")
@click.option("--identity-column", help="CSV column of identities (default: identity, name…).")
@click.option(
    "--per-identity",
    default=default_of(AugmentSettings, "per_identity"),
    show_default=True,
    help="Sketches to make for each identity.",
)
@click.option(
    "--per-mugshot",
    default=default_of(AugmentSettings, "per_mugshot"),
    show_default=True,
    help="Instead of --per-identity: this many sketches per style of EVERY mugshot.",
)
@click.option(
    "--styles",
    default="0,1,2",
    show_default=True,
    help="FS2K sketch styles, comma-separated: 0, 1, 2, or any (the model picks).",
)
@click.option(
    "--style-prompt",
    "style_prompts",
    multiple=True,
    metavar="TEXT",
    help="A description in words, given as text evidence (repeat for several).",
)
@click.option(
    "--model",
    default=default_of(AugmentSettings, "model"),
    show_default=True,
    help="Generator: default or a directory.",
)
@click.option(
    "--steps",
    default=default_of(AugmentSettings, "steps"),
    show_default=True,
    help="Sampler steps per sketch.",
)
@click.option(
    "--guidance",
    default=default_of(AugmentSettings, "guidance"),
    show_default=True,
    help="Classifier-free guidance.",
)
@click.option(
    "--min-identity-cosine",
    default=default_of(AugmentSettings, "min_identity_cosine"),
    show_default=True,
    help="Quality filter: drop a sketch whose SFace cosine to its mugshot is lower.",
)
@click.option(
    "--seed",
    default=default_of(AugmentSettings, "seed"),
    show_default=True,
    help="Base seed (per-sketch seeds derive).",
)
@click.option(
    "--device",
    default=default_of(AugmentSettings, "device"),
    show_default=True,
    help="cpu, cuda, cuda:N or auto.",
)
@click.option(
    "--batch-size",
    default=default_of(AugmentSettings, "batch_size"),
    show_default=True,
    help="Sketches per sampler call.",
)
@click.option(
    "--shard-size",
    default=default_of(AugmentSettings, "shard_size"),
    show_default=True,
    help="Identities per shard.",
)
@click.option(
    "--sampler",
    default=default_of(AugmentSettings, "sampler"),
    show_default=True,
    help="ddpm, ddim or dpm-solver.",
)
@click.option(
    "--clip",
    type=click.Path(exists=True, path_type=Path),
    help="CLIP checkpoint, for a generator trained on CLIP identity embeddings only.",
)
@click.option(
    "--no-reference-image",
    is_flag=True,
    help="Condition on the identity embedding only, even where the generator takes the "
    "mugshot as a reference image (an ablation).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=default_of(AugmentSettings, "backend"),
    show_default=True,
    help="Denoiser backend; auto: ONNX Runtime where it runs (exported once into the cache).",
)
@click.option("--threads", default=0, show_default=True, help="CPU threads (0: torch's default).")
@click.option(
    "--detector",
    default=default_of(AugmentSettings, "detector"),
    show_default=True,
    help="Face detector plugin.",
)
@click.option(
    "--encoder",
    default=default_of(AugmentSettings, "filter_encoder"),
    show_default=True,
    help="Face encoder of the quality filter.",
)
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Run the shards as Ray tasks: 'local' starts a Ray instance here, 'auto' joins "
    "the running cluster, or HOST:PORT / ray://HOST:PORT.",
)
@click.option("--ray-cpus", default=1.0, show_default=True, help="CPUs per Ray task.")
@click.option("--ray-gpus", default=0.0, show_default=True, help="GPUs per Ray task.")
@click.option(
    "--verify",
    is_flag=True,
    help="On resuming, check the sha256 of every finished file (default: its size).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def augment_command(
    ctx,
    mugshots,
    sources,
    data_dir,
    out,
    identities,
    image_column,
    identity_column,
    per_identity,
    per_mugshot,
    styles,
    style_prompts,
    model,
    steps,
    guidance,
    min_identity_cosine,
    seed,
    device,
    batch_size,
    shard_size,
    sampler,
    clip,
    no_reference_image,
    backend,
    threads,
    detector,
    encoder,
    ray_address,
    ray_cpus,
    ray_gpus,
    verify,
    no_progress,
) -> None:
    """Make synthetic sketches of the mugshots in MUGSHOTS (a folder or a gallery),
    or of the matcher's training photos (--source … --data DIR).

    Each mugshot's face is aligned; its SFace embedding, and for a generator that
    takes one (v2) its aligned crop as the reference image, condition the generator,
    which draws --per-identity sketches per identity (or --per-mugshot per style of
    every mugshot) in the --styles; sketches whose identity cosine to the mugshot is
    below --min-identity-cosine are dropped. The result is an FS2K-format folder
    (photo/, sketch/, annotations.json) with a manifest.json of provenance. An
    interrupted run resumes where it stopped.
    """
    from facefit.augment.inputs import TrainingPhotos
    from facefit.augment.plan import AugmentSettings
    from facefit.errors import InputError

    if sources and mugshots is not None:
        raise InputError("give MUGSHOTS or --source, not both")
    if sources and data_dir is None:
        raise InputError("--source reads the data folder: add --data DIR (../shared/data)")
    if not sources and mugshots is None:
        raise InputError(
            "give MUGSHOTS (a folder or gallery) or --source celeba-train/fs2k-train --data DIR"
        )
    if sources:
        mugshots = TrainingPhotos(data_dir, tuple(sources))
    settings = AugmentSettings(
        per_identity=per_identity,
        per_mugshot=per_mugshot,
        reference_image=not no_reference_image,
        backend=backend,
        styles=styles,
        style_prompts=tuple(style_prompts),
        model=model,
        steps=steps,
        guidance=guidance,
        min_identity_cosine=min_identity_cosine,
        seed=seed,
        batch_size=batch_size,
        shard_size=shard_size,
        sampler=sampler,
        detector=detector,
        filter_encoder=encoder,
        clip=None if clip is None else str(clip),
        device=device,
    )
    inputs = {
        "identities": identities,
        "image_column": image_column,
        "identity_column": identity_column,
        "verify": verify,
        "data_dir": data_dir,
    }
    registry = _registry(ctx)
    if ray_address is not None:
        from facefit.augment.distributed import augment_ray

        report = augment_ray(
            mugshots,
            out,
            settings,
            address=ray_address,
            num_cpus=ray_cpus,
            num_gpus=ray_gpus,
            progress=not no_progress,
            registry=registry,
            **inputs,
        )
    else:
        from facefit.augment.run import augment

        report = augment(
            mugshots,
            out,
            settings,
            registry=registry,
            progress=not no_progress,
            threads=threads,
            **inputs,
        )
    _summary(report)
