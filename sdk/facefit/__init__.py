"""facefit: forensic face generation and sketch-to-mugshot matching.

The public API: the values passed around (:mod:`facefit.types`), the interfaces
plugins implement (:mod:`facefit.interfaces`), the plugin registry
(:class:`Registry`) and pipeline configuration (:mod:`facefit.config`).
"""

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
from facefit.lazy import lazy_exports
from facefit.registry import Registry
from facefit.types import Candidate, Condition, Evidence, Match, Result, RoundTrace
from facefit.version import __version__

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


# the loop pulls in torch and diffusers: load it on first use, keep `import facefit` light
__getattr__, __dir__ = lazy_exports(
    __name__, {"Pipeline": "facefit.pipeline", "Choice": "facefit.pipeline"}
)
