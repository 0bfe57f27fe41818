"""Which retriever a gallery uses, and making one from its plugin name.

Exact search is always right, needs no tuning, and its cost grows with the
gallery: up to about 10,000 faces of 128 dimensions it is as fast as an
approximate index, and it grows linearly beyond. So ``auto`` picks exact up to that
size and an approximate index beyond: ``scann`` where ScaNN is installed (Linux),
which was faster than hnswlib at the same recall, else ``hnswlib``. The
measurements behind these choices are in docs/gallery.md.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from facefit.errors import PluginError

if TYPE_CHECKING:
    from facefit.interfaces import Retriever
    from facefit.registry import Registry

EXACT_MAX_VALUES = 10_000 * 128
"""``auto`` uses exact search while faces × dimension stays at or below this."""


def scann_available() -> bool:
    """Whether the ScaNN package is importable (without importing it)."""
    try:
        return importlib.util.find_spec("scann") is not None
    except (ImportError, ValueError):
        return False


def choose_retriever(n: int, dim: int) -> str:
    """``"exact"`` for a gallery of ``n`` faces of ``dim`` values up to the limit, else
    ``"scann"`` (or ``"hnswlib"`` where ScaNN is not installed)."""
    if n * dim <= EXACT_MAX_VALUES:
        return "exact"
    return "scann" if scann_available() else "hnswlib"


def create_retriever(
    name: str, dim: int, registry: Registry | None = None, **options: Any
) -> Retriever:
    """A new, empty retriever of the plugin ``name`` for ``dim``-d vectors."""
    if name == "auto":
        raise PluginError("retriever 'auto' is resolved by choose_retriever(); name a plugin here")
    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    return registry.create("retriever", name, dim=dim, **options)


def retriever_package(
    retriever: Retriever, registry: Registry | None = None
) -> dict[str, str] | None:
    """The package (name, version) that provides ``retriever``'s plugin, or None if unknown
    (a plugin registered in code, or a retriever made outside any registry)."""
    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    try:
        entry = registry.entry("retriever", retriever.name)
    except PluginError:
        return None
    if not isinstance(retriever, entry.factory if isinstance(entry.factory, type) else object):
        return None
    if entry.plugin.package in ("", "unknown", "(registered in code)"):
        return None
    return {"name": entry.plugin.package, "version": entry.plugin.version}


def missing_retriever(name: str, package: dict[str, str] | None, where: str) -> str:
    """The message for a gallery whose retriever plugin is not installed here."""
    if package is None:
        return (
            f"{where}: this gallery's retriever plugin {name!r} is not installed here; "
            "install the package that provides it (`facefit plugins` lists what is installed)"
        )
    return (
        f"{where}: this gallery's retriever plugin {name!r} comes from the package "
        f"{package['name']!r} (version {package['version']} when saved), which is not "
        f"installed here; install it (pip install '{package['name']}=={package['version']}')"
    )
