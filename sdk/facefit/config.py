"""Pipeline configuration: one object shared by Python, the TOML file and the CLI.

In Python, settings are keyword arguments of :class:`PipelineConfig` (checked as
they are given)::

    from facefit.pipeline import PipelineConfig

    config = PipelineConfig(rounds=2, candidates=2, steps=4)
    config = PipelineConfig.from_toml("pipeline.toml")   # the same, from a file
    config = config.replace_settings(seed=7)             # a copy with a change

In TOML, the ``[pipeline]`` table holds the same settings (:class:`Settings`), and
the other tables name a plugin for each part with its options; every part has a
default, so an empty file is a valid config::

    [pipeline]
    rounds = 3
    candidates = 4
    steps = 25

    [retriever]
    plugin = "hnswlib"     # any other key is an option of the plugin
    ef = 128

    [conditioners.text]
    plugin = "text"

    [weights]              # model files by name (facefit.weights.MODELS); relative
    sface = "models/sface.onnx"   # paths are taken from the config file's folder

The command line's ``--rounds``, ``--steps``… flags override the same settings
(:meth:`PipelineConfig.replace_settings`). Errors are :class:`~facefit.errors.ConfigError`
naming the file (or ``<python>``) and the offending key. :func:`validate`
additionally checks plugin names and options against a :class:`~facefit.registry.Registry`.
"""

from __future__ import annotations

import dataclasses
import numbers
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from facefit.errors import ConfigError, PluginError
from facefit.settings import Rule, at_least, between, check_fields
from facefit.types import MODALITIES


@dataclass(frozen=True)
class Settings:
    """How the loop runs: the ``[pipeline]`` table, ``PipelineConfig(**settings)``, the CLI flags.

    Every value is checked when the object is made: a wrong type or a value out of
    range is a :class:`~facefit.errors.ConfigError` naming the setting.
    """

    model: str = "default"
    """Generator: ``"default"`` (the shipped model) or a model directory."""
    device: str = "cpu"
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``."""
    rounds: int = 3
    """Most rounds of the loop (at least 1); it may stop earlier (``stop_when_stable``)."""
    candidates: int = 4
    """Candidate faces sampled per round (at least 1)."""
    steps: int = 25
    """Sampler (denoising) steps per round (at least 1); time grows linearly with it."""
    guidance: float = 3.0
    """Classifier-free guidance weight (1: no guidance; 0 or more)."""
    seed: int = 0
    """Random seed; each round derives its own (:func:`facefit.pipeline.round_seed`)."""
    top_k: int = 10
    """Identities kept in each ranked list (at least 1)."""
    gallery_reference_weight: float = 0.5
    """Weight of the top gallery face in the next round's reference identity (0 = candidates only)."""
    stop_when_stable: int = 2
    """Stop once the top identity has been the same for this many rounds (0 = never stop early)."""
    no_match_threshold: float = 0.2
    """Say "no likely match" when every identity's calibrated probability is below this."""
    match_prior: float = 0.5
    """Prior probability that the source person is in the gallery at all (:mod:`facefit.fusion`)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not _type_ok(value, str(f.type)):
                raise ConfigError(
                    f"setting {f.name} must be of type {f.type}, got {value!r} "
                    f"({type(value).__name__})"
                )
        check_fields(self, _SETTINGS_RULES, error=ConfigError)


_SETTINGS_RULES = {
    "rounds": at_least(1),
    "candidates": at_least(1),
    "steps": at_least(1),
    "top_k": at_least(1),
    "stop_when_stable": Rule(lambda v: v >= 0, "must be 0 or more"),
    "gallery_reference_weight": between(0, 1),
    "guidance": Rule(lambda v: v >= 0, "must not be negative"),
    "no_match_threshold": Rule(lambda v: 0 <= v <= 1, "must be a probability (0 to 1)"),
    "match_prior": Rule(lambda v: 0 < v <= 1, "must be above 0 and at most 1"),
}

SETTINGS = tuple(f.name for f in fields(Settings))
"""The names of the settings, in order."""


@dataclass(frozen=True)
class ComponentSpec:
    """A plugin name and the options it is created with."""

    plugin: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


DEFAULT_COMPONENTS: dict[str, ComponentSpec] = {
    "face_detector": ComponentSpec("yunet"),
    "face_encoder": ComponentSpec("sface"),
    "text_encoder": ComponentSpec("minilm"),
    "sketch_extractor": ComponentSpec("simple-sketch"),
    "sampler": ComponentSpec("ddpm"),
    "retriever": ComponentSpec("auto"),
    "denoiser_backend": ComponentSpec("auto"),  # onnxruntime on the CPU where installed
}
"""Plugin used for each part when a config does not name one."""

DEFAULT_CONDITIONERS: dict[str, ComponentSpec] = {m: ComponentSpec(m) for m in MODALITIES}


@dataclass(frozen=True, init=False)
class PipelineConfig:
    """A whole pipeline: settings, one plugin per part, one conditioner per modality.

    ``PipelineConfig(rounds=2, candidates=2, steps=4)`` sets :class:`Settings` by
    keyword (a setting given by keyword wins over the same one in ``settings``);
    an unknown name or a bad value is a :class:`~facefit.errors.ConfigError`.
    ``components`` maps a part (``"sampler"``, ``"retriever"``… see
    :data:`DEFAULT_COMPONENTS`) and ``conditioners`` a modality to a
    :class:`ComponentSpec`; parts left out keep their default plugin.
    """

    settings: Settings
    """How the loop runs."""
    components: Mapping[str, ComponentSpec]
    """The plugin of each part, with its options."""
    conditioners: Mapping[str, ComponentSpec]
    """The conditioner plugin of each modality."""
    source: str
    """Where the config came from (a file path, ``"<defaults>"`` or ``"<python>"``), for errors."""
    weights: Mapping[str, str]
    """``[weights]``: model name → file, consulted by :func:`facefit.weights.resolve`."""

    def __init__(
        self,
        settings: Settings | None = None,
        components: Mapping[str, ComponentSpec] | None = None,
        conditioners: Mapping[str, ComponentSpec] | None = None,
        source: str | None = None,
        weights: Mapping[str, str] | None = None,
        **changes: Any,
    ) -> None:
        settings = settings if settings is not None else Settings()
        if not isinstance(settings, Settings):
            raise ConfigError(
                f"settings must be a facefit.config.Settings, got {type(settings).__name__}; "
                f"or pass the settings by keyword: PipelineConfig(rounds=2, steps=4)"
            )
        if source is None:
            source = "<python>" if changes else "<defaults>"
        if changes:
            unknown = sorted(set(changes) - set(SETTINGS))
            if unknown:
                raise ConfigError(
                    f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}"
                )
            try:
                settings = dataclasses.replace(settings, **changes)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
        for name, table in (("components", components), ("conditioners", conditioners)):
            if table is not None and not all(isinstance(v, ComponentSpec) for v in table.values()):
                raise ConfigError(
                    f"{source}: {name} must map names to ComponentSpec(plugin, options)"
                )
        if components is not None and set(components) - set(DEFAULT_COMPONENTS):
            extra = ", ".join(sorted(set(components) - set(DEFAULT_COMPONENTS)))
            raise ConfigError(
                f"{source}: unknown part(s) {extra}; known: {', '.join(DEFAULT_COMPONENTS)}"
            )
        if conditioners is not None and set(conditioners) - set(MODALITIES):
            extra = ", ".join(sorted(set(conditioners) - set(MODALITIES)))
            raise ConfigError(f"{source}: unknown modality {extra}; known: {', '.join(MODALITIES)}")
        set_ = object.__setattr__
        set_(self, "settings", settings)
        set_(self, "components", MappingProxyType({**DEFAULT_COMPONENTS, **(components or {})}))
        set_(
            self,
            "conditioners",
            MappingProxyType({**DEFAULT_CONDITIONERS, **(conditioners or {})}),
        )
        set_(self, "source", source)
        set_(self, "weights", MappingProxyType(dict(weights or {})))

    @classmethod
    def from_toml(cls, path: str | Path) -> PipelineConfig:
        """Read and check a TOML config file (the same as :func:`load_config`)."""
        return load_config(path)

    def replace_settings(self, **changes: Any) -> PipelineConfig:
        """A copy with some settings changed (e.g. from command-line flags)."""
        unknown = sorted(set(changes) - set(SETTINGS))
        if unknown:
            raise ConfigError(
                f"invalid setting: unknown {', '.join(unknown)}; known: {', '.join(SETTINGS)}"
            )
        try:
            settings = dataclasses.replace(self.settings, **changes)
        except ConfigError as exc:
            raise ConfigError(f"invalid setting: {exc}") from None
        return dataclasses.replace(self, settings=settings)


def _type_ok(value: Any, annotation: str) -> bool:
    if isinstance(value, bool):
        return False
    if annotation == "float":
        return isinstance(value, numbers.Real)
    if annotation == "int":
        return isinstance(value, numbers.Integral)
    if annotation == "str":
        return isinstance(value, str)
    return True


def _parse_settings(table: Any, where: str) -> Settings:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [pipeline] must be a table")
    known = {f.name: f for f in fields(Settings)}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key [pipeline] {key!r}; known keys: {', '.join(known)}"
            )
        if not _type_ok(value, str(known[key].type)):
            raise ConfigError(
                f"{where}: [pipeline] {key} must be of type {known[key].type}, got {value!r}"
            )
    try:
        return Settings(**table)
    except ConfigError as exc:
        raise ConfigError(f"{where}: [pipeline] {exc}") from None


def _parse_component(table: Any, key: str, where: str) -> ComponentSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{key}] must be a table with a 'plugin' key")
    options = dict(table)
    plugin = options.pop("plugin", None)
    if not isinstance(plugin, str) or not plugin:
        raise ConfigError(f'{where}: [{key}] needs plugin = "NAME" (a non-empty string)')
    return ComponentSpec(plugin, options)


def _parse_weights(table: Any, where: str) -> dict[str, str]:
    from facefit.weights import MODELS

    if not isinstance(table, dict):
        raise ConfigError(f'{where}: [weights] must be a table of model name = "path"')
    weights = {}
    base = Path(where).parent if where and not where.startswith("<") else None
    for name, value in table.items():
        if name not in MODELS:
            raise ConfigError(
                f"{where}: unknown model [weights] {name!r}; known: {', '.join(MODELS)}"
            )
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: [weights] {name} must be a file path, got {value!r}")
        path = Path(value).expanduser()
        weights[name] = str(base / path if base is not None and not path.is_absolute() else path)
    return weights


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> PipelineConfig:
    """Build a :class:`PipelineConfig` from a parsed TOML document."""
    settings = Settings()
    components: dict[str, ComponentSpec] = {}
    conditioners: dict[str, ComponentSpec] = {}
    weights: dict[str, str] = {}
    for key, value in data.items():
        if key == "weights":
            weights = _parse_weights(value, source)
        elif key == "pipeline":
            settings = _parse_settings(value, source)
        elif key == "conditioners":
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [conditioners] must hold one table per modality")
            for modality, table in value.items():
                if modality not in MODALITIES:
                    raise ConfigError(
                        f"{source}: unknown modality [conditioners.{modality}]; "
                        f"known: {', '.join(MODALITIES)}"
                    )
                conditioners[modality] = _parse_component(table, f"conditioners.{modality}", source)
        elif key in DEFAULT_COMPONENTS:
            components[key] = _parse_component(value, key, source)
        else:
            known = ["pipeline", "conditioners", "weights", *DEFAULT_COMPONENTS]
            raise ConfigError(f"{source}: unknown table [{key}]; known: {', '.join(known)}")
    return PipelineConfig(settings, components, conditioners, source, weights)


def load_config(path: str | Path) -> PipelineConfig:
    """Read and check a pipeline config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))


def validate(config: PipelineConfig, registry: Any) -> None:
    """Check every plugin name and its options against a registry.

    Parts whose plugin is ``"auto"`` are chosen at run time and only their options
    are left unchecked. Raises :class:`ConfigError` naming the file and table.
    """
    from facefit.registry import check_options

    specs = [(kind, kind, spec) for kind, spec in config.components.items()]
    specs += [("conditioner", f"conditioners.{m}", spec) for m, spec in config.conditioners.items()]
    for kind, table, spec in specs:
        if spec.plugin == "auto":
            continue
        try:
            check_options(registry.entry(kind, spec.plugin), dict(spec.options))
        except PluginError as exc:
            raise ConfigError(f"{config.source}: [{table}] {exc}") from None
