"""``facefit train``: build a training pack and train the generator.

facefit train pack --data ../shared/data --out pack-64.npz
facefit train CONFIG.toml            # same as: facefit train run CONFIG.toml
facefit train export CONFIG.toml --out model-dir   # a checkpoint's EMA weights, mid-run
"""

from __future__ import annotations

import click


class _TrainGroup(click.Group):
    """``facefit train CONFIG.toml`` runs training; named subcommands do the rest."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("train", cls=_TrainGroup)
def train() -> None:
    """Train the face generator (facefit train CONFIG.toml), or build its data (pack)."""


@train.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--pack", type=click.Path(dir_okay=False), help="Training pack (overrides [train] pack)."
)
@click.option("--steps", type=int, help="Train to this many steps (overrides [train] steps).")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Output folder (overrides [train] out)."
)
@click.option("--device", help="cpu, cuda, cuda:N or auto (overrides [train] device).")
@click.option(
    "--threads",
    type=int,
    help="CPU threads for torch (overrides [train] threads); 1 on a CPU busy with other jobs.",
)
@click.option("--no-resume", is_flag=True, help="Start afresh even if checkpoints exist.")
@click.option(
    "--init-from",
    type=click.Path(exists=True, file_okay=False),
    help="Without a checkpoint, start from this exported model's weights (OUT/model).",
)
@click.option(
    "--benchmark", type=int, metavar="N", help="Time N steps, print s/step, save nothing."
)
def run(
    config: str,
    pack,
    steps,
    out,
    device,
    threads,
    no_resume: bool,
    init_from: str | None,
    benchmark: int | None,
) -> None:
    """Train the generator described by CONFIG (a TOML file); resumes automatically."""
    from facefit.generator.training.trainer import Trainer, load_train_config, seconds_per_step
    from facefit.generator.training.trainer import train as run_training

    cfg = load_train_config(config, pack=pack, steps=steps, out=out, device=device, threads=threads)
    if benchmark:
        trainer = Trainer(cfg)
        import os

        import torch

        wall, cpu = seconds_per_step(trainer, steps=benchmark)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        click.echo(
            f"{trainer.model.parameter_count() / 1e6:.2f} M parameters, batch "
            f"{cfg.batch_size}, {trainer.device}: {wall:.2f} s/step "
            f"(CPU time {cpu:.2f} s/step over {torch.get_num_threads()} threads; "
            f"load average {load:.1f})"
        )
        return
    model_dir = run_training(cfg, resume=not no_resume, init_from=init_from)
    click.echo(f"model written to {model_dir}")


@train.command("export")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    help="Checkpoint to export (default: the output folder's latest).",
)
@click.option(
    "--out",
    "target",
    required=True,
    type=click.Path(file_okay=False),
    help="Model directory to write (diffusers layout, EMA weights, model card).",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export(config: str, checkpoint: str | None, target: str, force: bool) -> None:
    """Export a checkpoint of CONFIG's run as a model directory, without training.

    Safe while the run goes on: the checkpoint is only read, and the directory is
    written beside --out and renamed into place when complete.
    """
    from pathlib import Path

    from facefit.errors import InputError
    from facefit.files import replaced_dir
    from facefit.generator.training.trainer import Trainer, load_train_config

    out = Path(target)
    if out.exists() and not force:
        raise InputError(f"{out} exists; use --force to replace it")
    trainer = Trainer(load_train_config(config, threads=1))
    if not trainer.resume(checkpoint):
        raise InputError(f"{config}: no checkpoint in {trainer.checkpoint_dir()}; train first")
    with replaced_dir(out) as staging:
        trainer.export(staging)
    click.echo(f"step {trainer.step} exported to {out}")


@train.command("pack")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="The shared data folder (fs2k-train/, celeba-subset/).",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Pack file to write (.npz)."
)
@click.option("--size", default=64, show_default=True, help="Side of the aligned crops.")
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(["fs2k", "celeba"]),
    help="Data sources (default: both).",
)
@click.option("--limit", type=int, help="At most this many items per source (quick trials).")
def pack(data_dir: str, out: str, size: int, sources: tuple[str, ...], limit: int | None) -> None:
    """Build the training pack from DATA, leaving out the development split."""
    from facefit.generator.training.pack import build_pack

    built = build_pack(
        data_dir, out, image_size=size, sources=sources or ("fs2k", "celeba"), limit=limit
    )
    counts = ", ".join(f"{k} {v}" for k, v in built.meta["counts"].items())
    click.echo(f"{out}: {len(built)} items ({counts}; {built.meta['skipped']} skipped)")
