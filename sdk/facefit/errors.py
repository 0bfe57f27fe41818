"""Errors a user can act on.

Every error raised for bad input, a bad config or a missing plugin is a
:class:`FacefitError`: its message names the input and says what to do. The CLI
prints the message alone (no traceback) and exits with status 2.
"""

from __future__ import annotations


class FacefitError(Exception):
    """Base class of errors that carry a message meant for the user."""


class PluginError(FacefitError):
    """A plugin is unknown, duplicated, misconfigured or failed to load."""


class UnknownPluginError(PluginError, KeyError):
    """No plugin registered this name for this kind."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class DuplicatePluginError(PluginError):
    """Two plugins registered the same name for the same kind."""


class PluginOptionError(PluginError, TypeError):
    """Options given to a plugin do not match what it accepts."""


class ConfigError(FacefitError, ValueError):
    """A pipeline config file is malformed; the message names the file and key."""


class InputError(FacefitError, ValueError):
    """An input (image, evidence, vector, manifest) is unusable; the message names it."""


class WeightsNotFoundError(FacefitError, FileNotFoundError):
    """A model file is missing; the message says which command installs it."""


class BackendUnavailableError(PluginError):
    """A runtime backend cannot run here (library or device missing); the message names the fallback."""
