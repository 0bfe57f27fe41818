"""Which retriever a gallery uses, and making one from its plugin name.

Exact search is always right and its cost grows with the gallery; on one CPU
core it answers 20,000 faces of 128 dimensions in about a third of a millisecond,
the time hnswlib needs at a million. Below that size exact search costs nothing
worth saving, and it needs no tuning, so ``auto`` picks it; above, hnswlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facefit.errors import PluginError

if TYPE_CHECKING:
    from facefit.interfaces import Retriever
    from facefit.registry import Registry

EXACT_MAX_VALUES = 20_000 * 128
"""``auto`` uses exact search while faces × dimension stays at or below this."""


def choose_retriever(n: int, dim: int) -> str:
    """``"exact"`` for a gallery of ``n`` faces of ``dim`` values up to the limit, else ``"hnswlib"``."""
    return "exact" if n * dim <= EXACT_MAX_VALUES else "hnswlib"


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
