"""The ``facefit`` command line.

Subcommands live in their own modules under :mod:`facefit.cli` and are added to
:data:`main` in :func:`_add_subcommands`. Errors meant for the user
(:class:`~facefit.errors.FacefitError`) are printed without a traceback and exit
with status 2.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from facefit.errors import FacefitError
from facefit.version import __version__

SUBCOMMANDS = {
    # module under facefit.cli : attribute holding the click command or group
    "plugins": "plugins",
    "config": "config",
    "models": "models",
    "eval": "eval_command",
    "fusion": "fusion",
    "gallery": "gallery",
    "train": "train",
    "matcher": "train_matcher",
    "runtime": "runtime",
    "generate": "generate",
    "augment": "augment_command",
    "demo": "demo",
    "serve": "serve",
    "users": "users",
}


class FacefitGroup(click.Group):
    """A click group that turns FacefitError into a one-line message."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FacefitError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=FacefitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="facefit")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Forensic face generation and sketch-to-mugshot matching."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _add_subcommands() -> None:
    for module_name, attr in SUBCOMMANDS.items():
        module = importlib.import_module(f"facefit.cli.{module_name}")
        main.add_command(getattr(module, attr))


_add_subcommands()
