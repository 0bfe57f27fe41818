"""facefit: forensic face generation and sketch-to-mugshot matching.

The public API: the values passed around (:mod:`facefit.types`), the interfaces
plugins implement (:mod:`facefit.interfaces`), the plugin registry
(:class:`Registry`) and pipeline configuration (:mod:`facefit.config`).
"""

from importlib.metadata import PackageNotFoundError, version

from facefit.errors import (
    BackendUnavailableError,
    ConfigError,
    DuplicatePluginError,
    FacefitError,
    InputError,
    PluginError,
    PluginOptionError,
    UnknownPluginError,
    WeightsNotFoundError,
)
from facefit.hookspecs import hookimpl
from facefit.registry import Registry
from facefit.types import Candidate, Condition, Evidence, Match, Result, RoundTrace

try:
    __version__ = version("facefit")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "BackendUnavailableError",
    "Candidate",
    "Condition",
    "ConfigError",
    "DuplicatePluginError",
    "Evidence",
    "FacefitError",
    "InputError",
    "Match",
    "PluginError",
    "PluginOptionError",
    "Registry",
    "Result",
    "RoundTrace",
    "UnknownPluginError",
    "WeightsNotFoundError",
    "__version__",
    "hookimpl",
]


def __getattr__(name: str):
    # the loop pulls in torch and diffusers: load it on first use, keep `import facefit` light
    if name in ("Pipeline", "Choice"):
        import facefit.pipeline

        return getattr(facefit.pipeline, name)
    raise AttributeError(f"module 'facefit' has no attribute {name!r}")
