"""Lazy exports: a package names its public API, and each name loads on first use.

So ``import facefit.generator`` stays light, and torch or onnx load only when a
name that needs them is used::

    __getattr__, __dir__ = lazy_exports(__name__, {"FaceGenerator": "facefit.generator.model"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__`` for ``{name: module it lives in}``."""
    exports = dict(exports)

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(importlib.import_module(package))))

    return __getattr__, __dir__
