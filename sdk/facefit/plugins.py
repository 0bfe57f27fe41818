"""Finding and loading plugins.

A plugin is a module (or any object) with functions marked ``@hookimpl``. Plugin
packages announce theirs in the ``facefit`` entry-point group; facefit's built-in
plugins are announced the same way in facefit's own ``pyproject.toml``.

``FACEFIT_LOAD_PLUGINS`` limits which third-party plugins load: a comma-separated
list of entry-point names (``FACEFIT_LOAD_PLUGINS=acme``); set but empty loads
none of them. facefit's own (built-in) plugins always load, so limiting the
vendors never leaves the pipeline without its detector, encoders or retrievers.
A name that no installed package provides is warned about (with the closest
installed names), since it loads nothing.

A plugin that fails to import or register is reported by name and skipped; the
others keep working. That includes a plugin whose import calls ``sys.exit()`` or
raises ``KeyboardInterrupt``: neither may end the host program.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

import pluggy

from facefit import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "facefit"
ENV_LOAD_PLUGINS = "FACEFIT_LOAD_PLUGINS"
BUILTIN_PACKAGE = "facefit"
"""The distribution whose entry points are the built-in plugins (never filtered, names reserved)."""

PLUGIN_ERRORS = (Exception, SystemExit, KeyboardInterrupt)
"""What a plugin may raise while it imports or registers without ending the host:
``sys.exit()`` in a plugin's import is a failure of that plugin, not of facefit."""


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from: its name, the package that ships it and its version."""

    name: str
    package: str
    version: str
    module: str


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    plugin: str
    package: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} from package {self.package!r} failed to load: {self.error}"


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager that knows facefit's hook specifications."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def allowed_from_env() -> set[str] | None:
    """Third-party entry-point names allowed by ``FACEFIT_LOAD_PLUGINS``, or None for all."""
    value = os.environ.get(ENV_LOAD_PLUGINS)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: called sys.exit({exc.code!r}) (facefit went on without it)"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt raised (facefit went on without it)"
    return f"{type(exc).__name__}: {exc}"


def _check_hook_names(pm: pluggy.PluginManager, plugin: object) -> None:
    """Fail loudly on a misspelled hook implementation (tox does the same)."""
    known = set(hookspecs.HOOKS.values())
    for attr in dir(plugin):
        if pm.parse_hookimpl_opts(plugin, attr) is None or attr in known:
            continue
        close = difflib.get_close_matches(attr, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise pluggy.PluginValidationError(plugin, f"unknown hook {attr!r}{hint}")


def register_plugin(
    pm: pluggy.PluginManager, plugin: object, info: PluginInfo
) -> PluginFailure | None:
    """Register one plugin object; return a failure instead of raising."""
    try:
        _check_hook_names(pm, plugin)
        pm.register(plugin, name=info.name)
    except PLUGIN_ERRORS as exc:  # a broken plugin must not take the others down
        failure = PluginFailure(info.name, info.package, _describe(exc))
        log.warning("%s", failure)
        return failure
    return None


def _warn_unknown(allowed: set[str], installed: set[str], given: str | None) -> None:
    """Warn about allowed names that match no installed entry point (a typo loads nothing)."""
    where = f"{ENV_LOAD_PLUGINS}" if given is None else "allow="
    for name in sorted(allowed - installed):
        close = difflib.get_close_matches(name, installed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        log.warning(
            "%s names plugin %r, which no installed package provides, so it loads nothing%s "
            "(installed: %s; `facefit plugins` lists them)",
            where,
            name,
            hint,
            ", ".join(sorted(installed)) or "none",
        )


def load_entry_points(
    pm: pluggy.PluginManager, allow: Iterable[str] | None = None
) -> tuple[dict[str, PluginInfo], list[PluginFailure]]:
    """Load and register every plugin of the ``facefit`` entry-point group.

    ``allow`` names exactly the entry points to load, built-ins included (a lean
    registry for a test or an embedding application). None reads
    ``FACEFIT_LOAD_PLUGINS``, which limits third-party plugins only: the built-ins
    always load. Returns the loaded plugins by name and the failures.
    """
    from_env = allow is None
    allowed = allowed_from_env() if from_env else set(allow)
    infos: dict[str, PluginInfo] = {}
    failures: list[PluginFailure] = []
    found = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if allowed:
        _warn_unknown(allowed, {ep.name for ep in found}, None if from_env else "allow")
    for ep in found:
        dist = ep.dist
        package = dist.name if dist is not None else "unknown"
        version = dist.version if dist is not None else "unknown"
        builtin = package == BUILTIN_PACKAGE
        if allowed is not None and ep.name not in allowed and not (from_env and builtin):
            continue
        info = PluginInfo(ep.name, package, version, ep.value)
        if ep.name in infos or pm.has_plugin(ep.name):
            failures.append(
                PluginFailure(
                    ep.name,
                    package,
                    f"entry-point name already used by package {infos[ep.name].package!r}"
                    if ep.name in infos
                    else "entry-point name already used",
                )
            )
            continue
        try:
            plugin = ep.load()
        except PLUGIN_ERRORS as exc:
            failure = PluginFailure(ep.name, package, _describe(exc))
            log.warning("%s", failure)
            failures.append(failure)
            continue
        failure = register_plugin(pm, plugin, info)
        if failure:
            failures.append(failure)
        else:
            infos[ep.name] = info
    return infos, failures
