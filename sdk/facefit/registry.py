"""The registry: every implementation the loaded plugins provide, by kind and name.

    >>> from facefit import Registry
    >>> registry = Registry.load()
    >>> registry.list_face_encoders()
    ['dlib', 'sface', ...]
    >>> encoder = registry.create_face_encoder("sface")   # a FaceEncoder

Every kind of :data:`facefit.kinds.KINDS` has a typed ``create_<kind>`` and
``list_<kinds>`` method, and the generic :meth:`Registry.create` and
:meth:`Registry.list` take the kind by name.

A registry is built by :meth:`Registry.load` (the factory); there is no
module-level plugin state. Building it calls each plugin's hooks once; creating
an implementation afterwards never goes through a hook call.

The names of facefit's built-in implementations are reserved: another package
that registers one (a retriever called ``exact``) is refused for that name, with a
warning and an entry in :attr:`Registry.failures`, and the built-in keeps it, so
galleries and configs that name the built-in keep working.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from facefit import hookspecs, interfaces
from facefit.errors import DuplicatePluginError, PluginError, PluginOptionError, UnknownPluginError
from facefit.kinds import KINDS
from facefit.kinds import kind as _kind
from facefit.plugins import (
    BUILTIN_PACKAGE,
    PLUGIN_ERRORS,
    PluginFailure,
    PluginInfo,
    load_entry_points,
    make_plugin_manager,
    register_plugin,
)

log = logging.getLogger(__name__)

INTERFACES: dict[str, type] = {k.name: k.interface for k in KINDS}
"""The base class each kind of implementation must derive from (from :data:`KINDS`)."""

IN_CODE = "(registered in code)"
"""The package recorded for a plugin object passed to :meth:`Registry.load` (``plugins=``)."""


@dataclass(frozen=True)
class Entry:
    """One registered implementation."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: PluginInfo

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.factory) or ""
        return doc.splitlines()[0] if doc else ""

    @property
    def builtin(self) -> bool:
        """Whether facefit itself ships it (its name is then reserved)."""
        return self.plugin.package == BUILTIN_PACKAGE

    @property
    def host_options(self) -> tuple[str, ...]:
        """The host options the factory declares it takes (its ``host_options``)."""
        return tuple(getattr(self.factory, "host_options", ()))


def _human(kind: str) -> str:
    return _kind(kind).human


class Registry:
    """Implementations by kind and name, built from a plugin manager's hooks."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        plugins: dict[str, PluginInfo],
        failures: Iterable[PluginFailure] = (),
    ) -> None:
        self._pm = pm
        self.plugins: dict[str, PluginInfo] = dict(plugins)
        self.failures: list[PluginFailure] = list(failures)
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in INTERFACES}
        self._conflicts: dict[tuple[str, str], list[Entry]] = {}
        for name, info in list(self.plugins.items()):
            failure = self._collect(name, info)
            if failure is not None:
                self.failures.append(failure)
                del self.plugins[name]

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        *,
        entry_points: bool = True,
        allow: Iterable[str] | None = None,
        plugins: Iterable[tuple[str, object]] = (),
    ) -> Registry:
        """Build a registry from installed plugins and, optionally, extra plugin objects.

        ``allow`` names exactly the entry points to load, built-ins included; by
        default every built-in loads and ``FACEFIT_LOAD_PLUGINS`` (when set) limits
        the third-party ones. ``plugins`` are ``(name, object)`` pairs registered directly, e.g.
        a module of an application that embeds facefit.
        """
        pm = make_plugin_manager()
        infos: dict[str, PluginInfo] = {}
        failures: list[PluginFailure] = []
        if entry_points:
            infos, failures = load_entry_points(pm, allow)
        for name, obj in plugins:
            module = getattr(obj, "__name__", type(obj).__name__)
            info = PluginInfo(name, IN_CODE, "", module)
            failure = register_plugin(pm, obj, info)
            if failure:
                failures.append(failure)
            else:
                infos[name] = info
        return cls(pm, infos, failures)

    def _collect(self, plugin_name: str, info: PluginInfo) -> PluginFailure | None:
        """Call each hook of one plugin; on any error, drop everything it registered."""
        plugin = self._pm.get_plugin(plugin_name)
        added: list[Entry] = []
        try:
            for kind, hook_name in hookspecs.HOOKS.items():
                for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
                    if impl.plugin is not plugin:
                        continue
                    register = self._make_register(kind, info, added)
                    impl.function(*[{"register": register}[a] for a in impl.argnames])
        except PLUGIN_ERRORS as exc:  # sys.exit() in a hook fails the plugin, not facefit
            failure = PluginFailure(info.name, info.package, f"{type(exc).__name__}: {exc}")
            log.warning("%s", failure)
            return failure
        for entry in added:
            self._add(entry)
        return None

    def _make_register(self, kind: str, info: PluginInfo, added: list[Entry]) -> Callable:
        base = INTERFACES[kind]

        def register(factory: Callable[..., Any], name: str | None = None) -> None:
            if not callable(factory):
                raise PluginError(f"register(): {factory!r} is not a class or factory")
            if inspect.isclass(factory) and not issubclass(factory, base):
                raise PluginError(
                    f"register(): {factory.__qualname__} must subclass "
                    f"facefit.interfaces.{base.__name__} to be a {_human(kind)}"
                )
            name = name or getattr(factory, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(
                    f"register(): {factory!r} has no name; pass name=... or set a `name` attribute"
                )
            entry = Entry(kind, name, factory, info)
            _check_host_options(entry)
            added.append(entry)

        return register

    def _add(self, entry: Entry) -> None:
        known = self._entries[entry.kind]
        key = (entry.kind, entry.name)
        current = known.get(entry.name)
        if current is not None and current.builtin != entry.builtin:
            builtin, other = (current, entry) if current.builtin else (entry, current)
            known[entry.name] = builtin
            self._refuse(other)
            return
        if current is not None or key in self._conflicts:
            clash = self._conflicts.setdefault(
                key, [known.pop(entry.name)] if entry.name in known else []
            )
            clash.append(entry)
            log.warning("%s", self._conflict_message(key))
            return
        known[entry.name] = entry

    def _refuse(self, entry: Entry) -> None:
        """Turn away a plugin's use of a built-in name; its other names stay usable."""
        failure = PluginFailure(
            entry.plugin.name,
            entry.plugin.package,
            f"{_human(entry.kind)} {entry.name!r} is the name of a facefit built-in and is "
            f"reserved; this registration was refused and the built-in kept. Register it "
            f"under a name of your own (e.g. '{entry.plugin.package}-{entry.name}')",
        )
        log.warning("%s", failure)
        self.failures.append(failure)

    def _conflict_message(self, key: tuple[str, str]) -> str:
        kind, name = key
        clash = self._conflicts[key]
        who = " and ".join(f"{e.plugin.package!r} (plugin {e.plugin.name!r})" for e in clash)
        return (
            f"{_human(kind)} {name!r} is registered by more than one plugin: {who}; "
            f"{self._conflict_advice(clash)}"
        )

    def _conflict_advice(self, clash: list[Entry]) -> str:
        """What resolves a clash: the exact FACEFIT_LOAD_PLUGINS value keeping each side.

        Built-ins always load whatever the variable says, so a value naming every
        other third-party plugin in use keeps the pipeline whole.
        """
        rivals = {e.plugin.name for e in clash}
        if len(rivals) == 1:
            return (
                f"plugin {clash[0].plugin.name!r} registers the name twice; its author must fix it"
            )
        installed = [e for e in clash if e.plugin.package != IN_CODE]
        if not installed:
            return "register only one of them in code"
        vendors = [
            n
            for n, i in sorted(self.plugins.items())
            if i.package not in (BUILTIN_PACKAGE, IN_CODE)
        ]
        keeps = []
        for e in installed:
            keep = [n for n in vendors if n not in rivals or n == e.plugin.name]
            keeps.append(f"FACEFIT_LOAD_PLUGINS={','.join(keep)} keeps {e.plugin.package!r}'s")
        uninstall = " or ".join(f"`pip uninstall {e.plugin.package}`" for e in installed)
        advice = f"uninstall one ({uninstall}), or choose one: {'; '.join(keeps)}"
        advice += " (facefit's built-in plugins always load)"
        if len(installed) < len(clash):
            advice += "; a plugin registered in code is not affected by FACEFIT_LOAD_PLUGINS"
        return advice

    # -- using ------------------------------------------------------------------------------

    @property
    def conflicts(self) -> list[str]:
        """One message per name registered by more than one plugin."""
        return [self._conflict_message(key) for key in self._conflicts]

    def list(self, kind: str) -> list[str]:
        """Sorted names of the implementations of one kind (``"face_encoder"``…)."""
        self._check_kind(kind)
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Registered entries, of one kind or of all."""
        kinds = [kind] if kind else list(INTERFACES)
        for k in kinds:
            self._check_kind(k)
        return [self._entries[k][n] for k in kinds for n in sorted(self._entries[k])]

    def entry(self, kind: str, name: str) -> Entry:
        """The entry registered under ``name``, or a clear error."""
        self._check_kind(kind)
        if (kind, name) in self._conflicts:
            raise DuplicatePluginError(self._conflict_message((kind, name)))
        try:
            return self._entries[kind][name]
        except KeyError:
            known = ", ".join(self.list(kind)) or "none"
            hint = ""
            failed = [f.plugin for f in self.failures]
            if failed:
                hint = f" (plugins that failed to load: {', '.join(failed)}; run `facefit plugins`)"
            raise UnknownPluginError(
                f"unknown {_human(kind)} {name!r}; known: {known}{hint}"
            ) from None

    def create(self, kind: str, name: str, /, **options: Any) -> Any:
        """Create the implementation ``name`` of ``kind`` with the given options."""
        return self._create(self.entry(kind, name), options)

    def create_hosted(
        self, kind: str, name: str, host: Mapping[str, Any], /, **options: Any
    ) -> Any:
        """Create ``name`` of ``kind``, passing it the host options it declares.

        ``host`` holds what the host offers (see the kind's ``host_options`` in
        :data:`facefit.kinds.KINDS`); the implementation gets those its
        ``host_options`` names, unless ``options`` set them already.
        """
        entry = self.entry(kind, name)
        offered = _kind(kind).host_options
        unknown = sorted(set(host) - set(offered))
        if unknown:
            raise PluginError(f"{_human(kind)}s are not offered host option(s) {unknown}")
        given = {k: host[k] for k in entry.host_options if k in host and k not in options}
        return self._create(entry, {**options, **given})

    def _create(self, entry: Entry, options: dict[str, Any]) -> Any:
        kind, name = entry.kind, entry.name
        check_options(entry, options)
        instance = entry.factory(**options)
        base = INTERFACES[kind]
        if not isinstance(instance, base):
            raise PluginError(
                f"{_human(kind)} {name!r} from package {entry.plugin.package!r} returned "
                f"{type(instance).__name__}, which is not a facefit.interfaces.{base.__name__}"
            )
        return instance

    def provides(self, plugin_name: str) -> list[Entry]:
        """Everything one plugin registered."""
        return [e for e in self.entries() if e.plugin.name == plugin_name]

    def _check_kind(self, kind: str) -> None:
        _kind(kind)  # a clear error for an unknown kind

    # -- typed methods, one pair per kind of facefit.kinds.KINDS (tests/test_meta.py checks) --

    def create_face_detector(self, name: str, /, **options: Any) -> interfaces.FaceDetector:
        """Create the face detector ``name`` (``yunet``…)."""
        return self.create("face_detector", name, **options)

    def list_face_detectors(self) -> list[str]:
        """Names of the registered face detectors."""
        return self.list("face_detector")

    def create_face_encoder(self, name: str, /, **options: Any) -> interfaces.FaceEncoder:
        """Create the face encoder ``name`` (``sface``, ``dlib``…)."""
        return self.create("face_encoder", name, **options)

    def list_face_encoders(self) -> list[str]:
        """Names of the registered face encoders."""
        return self.list("face_encoder")

    def create_text_encoder(self, name: str, /, **options: Any) -> interfaces.TextEncoder:
        """Create the text encoder ``name`` (``minilm``…)."""
        return self.create("text_encoder", name, **options)

    def list_text_encoders(self) -> list[str]:
        """Names of the registered text encoders."""
        return self.list("text_encoder")

    def create_sketch_extractor(self, name: str, /, **options: Any) -> interfaces.SketchExtractor:
        """Create the sketch extractor ``name`` (``simple-sketch``…)."""
        return self.create("sketch_extractor", name, **options)

    def list_sketch_extractors(self) -> list[str]:
        """Names of the registered sketch extractors."""
        return self.list("sketch_extractor")

    def create_conditioner(self, name: str, /, **options: Any) -> interfaces.Conditioner:
        """Create the conditioner ``name`` (``sketch``, ``text``…)."""
        return self.create("conditioner", name, **options)

    def list_conditioners(self) -> list[str]:
        """Names of the registered conditioners."""
        return self.list("conditioner")

    def create_sampler(self, name: str, /, **options: Any) -> interfaces.Sampler:
        """Create the sampler ``name`` (``ddim``…)."""
        return self.create("sampler", name, **options)

    def list_samplers(self) -> list[str]:
        """Names of the registered samplers."""
        return self.list("sampler")

    def create_retriever(self, name: str, /, **options: Any) -> interfaces.Retriever:
        """Create the retriever ``name`` (``exact``, ``hnswlib``…); options include ``dim``."""
        return self.create("retriever", name, **options)

    def list_retrievers(self) -> list[str]:
        """Names of the registered retrievers."""
        return self.list("retriever")

    def create_loss(self, name: str, /, **options: Any) -> interfaces.Loss:
        """Create the training objective ``name`` (``diffusion``, ``identity``)."""
        return self.create("loss", name, **options)

    def list_losses(self) -> list[str]:
        """Names of the registered losses."""
        return self.list("loss")

    def create_denoiser_backend(self, name: str, /, **options: Any) -> interfaces.DenoiserBackend:
        """Create the denoiser backend ``name`` (``eager``, ``onnxruntime``…)."""
        return self.create("denoiser_backend", name, **options)

    def list_denoiser_backends(self) -> list[str]:
        """Names of the registered denoiser backends."""
        return self.list("denoiser_backend")


def _check_host_options(entry: Entry) -> None:
    """A factory may only declare host options its kind is offered."""
    offered = _kind(entry.kind).host_options
    declared = entry.host_options
    unknown = [o for o in declared if o not in offered]
    if unknown:
        offer = ", ".join(offered) or "none"
        raise PluginError(
            f"register(): {_human(entry.kind)} {entry.name!r} declares host option(s) "
            f"{', '.join(unknown)}, which facefit does not offer {_human(entry.kind)}s "
            f"(offered: {offer}; see facefit.kinds)"
        )


def check_options(entry: Entry, options: dict[str, Any]) -> None:
    """Raise :class:`PluginOptionError` for an unknown or a missing required option."""
    try:
        signature = inspect.signature(entry.factory)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    params = signature.parameters.values()
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params)
    named = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    what = f"{_human(entry.kind)} {entry.name!r}"
    unknown = sorted(set(options) - set(named))
    if unknown and not accepts_any:
        accepted = ", ".join(sorted(named)) or "none"
        raise PluginOptionError(
            f"{what} does not take option(s) {', '.join(unknown)}; it accepts: {accepted}"
        )
    missing = [n for n, p in named.items() if p.default is p.empty and n not in options]
    if missing:
        raise PluginOptionError(f"{what} needs option(s) {', '.join(missing)}")
