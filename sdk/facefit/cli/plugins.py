"""``facefit plugins``: what is installed and what each plugin provides."""

from __future__ import annotations

import json
import logging

import click

from facefit.registry import Registry


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List every plugin with its package, version and what it provides."""
    # failures are printed below; keep the loader's log warnings from repeating them
    logging.getLogger("facefit.plugins").setLevel(logging.ERROR)
    logging.getLogger("facefit.registry").setLevel(logging.ERROR)
    registry = Registry.load()
    rows = []
    for name, info in sorted(registry.plugins.items()):
        provides = [f"{e.kind}:{e.name}" for e in registry.provides(name)]
        rows.append(
            {"plugin": name, "package": info.package, "version": info.version, "provides": provides}
        )
    failed = [
        {"plugin": f.plugin, "package": f.package, "error": f.error} for f in registry.failures
    ]
    if as_json:
        click.echo(
            json.dumps(
                {"plugins": rows, "failed": failed, "conflicts": registry.conflicts}, indent=2
            )
        )
        return
    if not rows:
        click.echo("no plugins loaded (is FACEFIT_LOAD_PLUGINS set?)")
    width = max([len(r["plugin"]) for r in rows] + [6])
    for row in rows:
        click.echo(
            f"{row['plugin']:<{width}}  {row['package']} {row['version']}\n"
            f"{'':<{width}}  provides: {', '.join(row['provides']) or '(nothing)'}"
        )
    for f in registry.failures:
        click.secho(f"FAILED {f}", fg="red", err=True)
    for message in registry.conflicts:
        click.secho(f"CONFLICT {message}", fg="yellow", err=True)
