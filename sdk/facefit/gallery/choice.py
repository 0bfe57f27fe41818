"""Which retriever a gallery uses, and making one from its plugin name.

Exact search is always right, needs no tuning, and its cost grows with the
gallery: for 10,000 faces of 128 dimensions it takes about as long as hnswlib at
its default breadth (≈0.5–1 ms per query on one core of this project's 2-core
machine, see ``benchmarks/results/gallery.md``), and twice as long at 20,000. So
``auto`` picks exact up to that size and hnswlib beyond.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facefit.errors import PluginError

if TYPE_CHECKING:
    from facefit.interfaces import Retriever
    from facefit.registry import Registry

EXACT_MAX_VALUES = 10_000 * 128
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
