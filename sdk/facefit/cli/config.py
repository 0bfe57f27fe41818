"""``facefit config``: check a pipeline config file."""

from __future__ import annotations

import click

from facefit.config import load_config, validate
from facefit.registry import Registry


@click.group("config")
def config() -> None:
    """Pipeline config files."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
def check(path: str) -> None:
    """Validate PATH: its keys, plugin names and plugin options."""
    cfg = load_config(path)
    validate(cfg, Registry.load())
    click.echo(f"{path}: ok")
    for kind, spec in cfg.components.items():
        click.echo(f"  {kind}: {spec.plugin}")
    for modality, spec in cfg.conditioners.items():
        click.echo(f"  conditioner {modality}: {spec.plugin}")
