"""An augmentation job: its settings, its inputs, how it is cut into shards, its seeds.

A job is fixed before any work starts. Its *fingerprint* (sha256 of the settings
that change the output, the generator's files, the plugins and the inputs) is
written to the output folder's ``manifest.json``; a later run with the same
fingerprint resumes the job, one with another fingerprint is refused.

**Shards.** The identities, sorted, are cut into consecutive groups of
``shard_size``; all mugshots of an identity land in the same shard. A shard is the
unit of work and of resumption: it is generated as a whole (in sampler calls of
``batch_size`` images, in a fixed order) and committed atomically, so a shard made
again after an interruption, on this machine or on a Ray worker, is made from the
same batches and gives the same bytes.

**Samples.** Identity ``I`` gets ``per_identity`` samples ``k = 0 … N-1``. Sample
``k`` is drawn from the identity's ``k mod M``-th usable mugshot (``M`` of them, in
key order), in variant ``k mod V`` of the ``V`` (style, prompt) combinations
(styles vary fastest), with the seed :func:`sample_seed` ``(seed, I, key, k)``.
With ``per_mugshot`` ``R`` instead, *every* usable mugshot gets ``R × V`` samples
``k = 0 … RV-1`` of its own, sample ``k`` in variant ``k mod V`` (so each mugshot
is drawn in every style), seeded ``(seed, I, key, k)``: a mugshot's samples do not
depend on which other mugshots of its identity have a face.

**Conditions.** The identity embedding of the mugshot always conditions the
generator; where the generator takes a reference image (``reference_image`` in its
``config.json``, generator v2) the mugshot's aligned crop goes in too, unless
``reference_image`` is off. :func:`generator_conditions` says which, and the job
description records it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from facefit.augment.inputs import Mugshot
from facefit.errors import InputError
from facefit.files import sha256_file
from facefit.settings import Rule, at_least, check_fields, one_of

__all__ = [
    "AugmentSettings",
    "Job",
    "Sample",
    "Shard",
    "Variant",
    "generator_conditions",
    "identity_samples",
    "parse_styles",
    "plan_job",
    "planned_sketches",
    "resolve_backend",
    "sample_seed",
    "style_number",
]

ANY_STYLE = "any"
BACKENDS = ("auto", "onnxruntime", "eager")
"""Denoiser backends a job may name; ``auto`` is ONNX Runtime on the CPU where it is
installed, else eager (:func:`facefit.devices.auto_backend`)."""


def parse_styles(text: str | Sequence[str | int]) -> tuple[str, ...]:
    """``"0,1,2"``, ``"any"`` or a list of them → generator domain names, in order.

    ``0``, ``1``, ``2`` are FS2K's artist styles (``sketch-style0``…); ``any`` lets the
    model choose (``sketch``); the domain names themselves are accepted too. Repeats
    are dropped.
    """
    from facefit.generator.conditions import SKETCH_STYLES, sketch_domain

    styles = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    domains: list[str] = []
    for style in styles:
        word = str(style).strip().lower()
        if word in (ANY_STYLE, "sketch"):
            domain = sketch_domain(None)
        elif word.startswith("sketch-style") and word[12:].isdigit():
            domain = sketch_domain(int(word[12:]))
        elif word.isdigit() and int(word) < SKETCH_STYLES:
            domain = sketch_domain(int(word))
        else:
            known = ", ".join(str(s) for s in range(SKETCH_STYLES))
            raise InputError(
                f"unknown sketch style {style!r}; use {known} (FS2K's artist styles) or "
                f"{ANY_STYLE!r}, comma-separated (e.g. --styles 0,2)"
            )
        if domain not in domains:
            domains.append(domain)
    if not domains:
        raise InputError("no sketch style given; use e.g. --styles 0,1,2 or --styles any")
    return tuple(domains)


def style_number(domain: str) -> int:
    """The FS2K ``style`` of a generated sketch: 0, 1, 2, or -1 for ``sketch`` (any style)."""
    prefix = "sketch-style"
    return int(domain[len(prefix) :]) if domain.startswith(prefix) else -1


def sample_seed(seed: int, identity: str, key: str, sample: int) -> int:
    """The seed of sample ``sample`` of ``identity`` drawn from mugshot ``key`` (31 bits).

    A hash of the four, so it depends on none of the other inputs or their order.
    """
    text = json.dumps([int(seed), identity, key, int(sample)], ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Variant:
    """What one sample is asked to look like: a target domain and an optional prompt."""

    domain: str
    prompt: str | None = None


_AUGMENT_RULES = {
    "per_identity": at_least(1),
    "per_mugshot": Rule(lambda v: v >= 0, "must be 0 (off) or more"),
    "backend": one_of(BACKENDS),
    "steps": at_least(1),
    "batch_size": at_least(1),
    "shard_size": at_least(1),
    "min_identity_cosine": Rule(lambda v: -1 <= v <= 1, "is a cosine: must be between -1 and 1"),
}


@dataclass(frozen=True)
class AugmentSettings:
    """Everything that decides what an augmentation job makes.

    ``per_identity`` sketches are made for each identity, or, with ``per_mugshot``
    ``R`` ≥ 1, ``R`` per style (and prompt) for *every* mugshot (``per_identity`` is
    then unused); ``styles`` are generator domain names (see :func:`parse_styles`);
    ``style_prompts`` are free-text descriptions given as text evidence.
    ``reference_image`` gives the mugshot's aligned crop to generators that take a
    reference image (off: the identity embedding only, for ablations). ``min_identity_cosine`` is the quality
    filter: a sketch whose face-encoder cosine to its mugshot is lower is dropped.
    ``batch_size`` is images per sampler call; ``shard_size`` identities per shard.
    ``detector``/``filter_encoder`` name the plugins that align the mugshots and
    score the sketches (YuNet and SFace); ``clip`` is a CLIP checkpoint, needed (and
    accepted) only for a generator trained on CLIP identity embeddings. ``backend``
    is the denoiser backend (``auto``: ONNX Runtime on the CPU where installed, else
    eager, resolved by :func:`plan_job`; it is part of the job, since backends round differently).
    ``device`` does not change the job (it is not in the fingerprint).
    """

    per_identity: int = 4
    styles: tuple[str, ...] = ("sketch-style0", "sketch-style1", "sketch-style2")
    style_prompts: tuple[str, ...] = ()
    model: str = "default"
    steps: int = 25
    guidance: float = 3.0
    min_identity_cosine: float = 0.25
    seed: int = 0
    batch_size: int = 32
    shard_size: int = 16
    sampler: str = "ddpm"
    detector: str = "yunet"
    filter_encoder: str = "sface"
    clip: str | None = None
    per_mugshot: int = 0
    reference_image: bool = True
    backend: str = "auto"
    device: str = field(default="auto", compare=False)

    def __post_init__(self) -> None:
        check_fields(self, _AUGMENT_RULES, error=InputError, flags=True)
        object.__setattr__(self, "styles", parse_styles(self.styles))
        prompts = tuple(" ".join(str(p).split()) for p in self.style_prompts)
        if any(not p for p in prompts):
            raise InputError("--style-prompt: an empty prompt; give a description in words")
        object.__setattr__(self, "style_prompts", prompts)
        object.__setattr__(self, "guidance", float(self.guidance))
        object.__setattr__(self, "min_identity_cosine", float(self.min_identity_cosine))
        object.__setattr__(self, "reference_image", bool(self.reference_image))

    @property
    def variants(self) -> tuple[Variant, ...]:
        """Every (style, prompt) combination, styles varying fastest."""
        prompts: tuple[str | None, ...] = self.style_prompts or (None,)
        return tuple(Variant(d, p) for p in prompts for d in self.styles)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["styles"] = list(self.styles)
        data["style_prompts"] = list(self.style_prompts)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AugmentSettings:
        data = dict(data)
        data["styles"] = tuple(data["styles"])
        data["style_prompts"] = tuple(data.get("style_prompts", ()))
        return cls(**data)


@dataclass(frozen=True)
class Sample:
    """One sketch to draw: from which usable mugshot (its index), in which variant."""

    mugshot: int
    variant: Variant
    number: int
    """``k``: the sample's number within its identity (``per_identity``) or its mugshot."""
    seed: int


def identity_samples(settings: AugmentSettings, identity: str, keys: Sequence[str]) -> list[Sample]:
    """The samples of ``identity`` whose usable mugshots (a face was found) have ``keys``,
    in key order: the rule of this module's docstring."""
    variants = settings.variants
    if not keys:
        return []
    if settings.per_mugshot:
        count = settings.per_mugshot * len(variants)
        return [
            Sample(m, variants[k % len(variants)], k, sample_seed(settings.seed, identity, key, k))
            for m, key in enumerate(keys)
            for k in range(count)
        ]
    out = []
    for k in range(settings.per_identity):
        m = k % len(keys)
        seed = sample_seed(settings.seed, identity, keys[m], k)
        out.append(Sample(m, variants[k % len(variants)], k, seed))
    return out


def planned_sketches(settings: AugmentSettings, mugshots: Sequence[Mugshot]) -> int:
    """How many sketches ``mugshots`` ask for if every one has a face (for progress)."""
    if settings.per_mugshot:
        return settings.per_mugshot * len(settings.variants) * len(mugshots)
    return settings.per_identity * len({m.identity for m in mugshots})


@dataclass(frozen=True)
class Shard:
    """A unit of work: whole identities with all their mugshots."""

    index: int
    mugshots: tuple[Mugshot, ...]

    @property
    def name(self) -> str:
        return f"shard-{self.index:06d}"

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.identity for m in self.mugshots))


@dataclass(frozen=True)
class Job:
    """A planned job: settings, the resolved generator, the inputs and their shards.

    :attr:`description` is what ``manifest.json`` records as ``job``;
    :attr:`fingerprint` is its sha256 (computed once, kept by :meth:`for_worker`).
    """

    settings: AugmentSettings
    model_dir: Path
    shards: tuple[Shard, ...]
    description: dict[str, Any]
    skipped: tuple[dict[str, str], ...] = ()
    """Input files that could not be read at planning (missing, unreadable)."""
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", job_fingerprint(self.description))

    @property
    def mugshots(self) -> list[Mugshot]:
        return [m for s in self.shards for m in s.mugshots]

    @property
    def identity_encoder(self) -> str:
        """The face encoder plugin whose embeddings the generator takes."""
        return str(self.description["model"]["identity_encoder"])

    def for_worker(self) -> Job:
        """What a shard worker needs: no input list, no shards (each task gets its own)."""
        return replace(
            self,
            shards=(),
            skipped=(),
            description={"model": {"identity_encoder": self.identity_encoder}},
        )


def job_fingerprint(description: dict[str, Any]) -> str:
    """sha256 of a job description in canonical JSON."""
    text = json.dumps(description, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_files(model_dir: Path) -> dict[str, str]:
    """sha256 of every file of a generator directory, by name."""
    return {p.name: sha256_file(p) for p in sorted(model_dir.iterdir()) if p.is_file()}


def _checkpoint_files(path: Path) -> dict[str, Any]:
    path = path.expanduser().resolve()
    if path.is_file():
        return {"path": str(path), "files": {path.name: sha256_file(path)}}
    if path.is_dir():
        return {"path": str(path), "files": model_files(path)}
    raise InputError(f"--clip: {path} not found; give the CLIP checkpoint folder or file")


def read_model_config(model_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{model_dir / 'config.json'}: cannot read ({exc})") from None


def check_identity_encoder(model_dir: Path, config: dict[str, Any], settings: AugmentSettings):
    """The face encoder that makes the generator's identity condition, or a clear refusal.

    The generator takes one identity embedding, from the encoder it was trained
    with (``face_encoder`` in its config). A CLIP checkpoint is accepted only by a
    generator trained on CLIP embeddings, and such a generator needs one.
    """
    encoder = str(config.get("face_encoder", "sface"))
    dim = config.get("identity_dim", "?")
    if settings.clip is not None and encoder != "clip":
        raise InputError(
            f"--clip: the generator {model_dir} was trained with {encoder!r} identity "
            f"embeddings ({dim}-d), not CLIP's, and takes only those; leave out --clip "
            "(the SFace identity is always used) or give a generator trained with "
            "face_encoder = 'clip'"
        )
    if encoder == "clip" and settings.clip is None:
        raise InputError(
            f"the generator {model_dir} takes CLIP identity embeddings ({dim}-d): pass "
            "--clip CHECKPOINT, the CLIP weights it was trained with"
        )
    return encoder


def generator_conditions(config: dict[str, Any], settings: AugmentSettings) -> list[str]:
    """The conditions the job gives the generator: ``identity`` (the mugshot's
    embedding), ``reference_image`` (its aligned crop, where the generator takes one
    and ``settings.reference_image`` is on), ``text`` (with style prompts), ``domain``."""
    used = ["identity"]
    if config.get("reference_image") and settings.reference_image:
        used.append("reference_image")
    if settings.style_prompts:
        used.append("text")
    return [*used, "domain"]


def resolve_backend(settings: AugmentSettings, registry: Any) -> str:
    """The denoiser backend the job runs: ``settings.backend``, with ``auto`` resolved
    on the job's device by the pipeline's rule (:func:`facefit.devices.auto_backend`:
    ``onnxruntime`` on the CPU where that plugin is registered and ONNX Runtime is
    installed, else ``eager``). A named backend that is not registered is a clear error."""
    from facefit.devices import AUTO_BACKEND, auto_backend

    if settings.backend != AUTO_BACKEND:
        registry.entry("denoiser_backend", settings.backend)  # names the known ones if not
        return settings.backend
    return auto_backend(AUTO_BACKEND, registry, settings.device)


def plugin_info(registry: Any, kind: str, name: str) -> dict[str, str]:
    entry = registry.entry(kind, name)
    return {
        "kind": kind,
        "name": name,
        "package": entry.plugin.package,
        "version": entry.plugin.version,
    }


def plan_job(
    mugshots: Sequence[Mugshot],
    settings: AugmentSettings,
    *,
    registry: Any = None,
    source: dict[str, Any] | None = None,
) -> Job:
    """Fix a job: resolve the generator, hash the inputs and the model, cut the shards.

    Checks what can be checked before any model is loaded: the generator directory,
    the identity encoder it needs, the plugins named in ``settings``. An input file
    that cannot be read is left out and listed in :attr:`Job.skipped`.
    """
    from facefit.generator.loading import resolve_model_dir
    from facefit.version import __version__

    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    model_dir = resolve_model_dir(settings.model).resolve()
    config = read_model_config(model_dir)
    identity_encoder = check_identity_encoder(model_dir, config, settings)
    settings = replace(settings, backend=resolve_backend(settings, registry))
    plugins = [
        plugin_info(registry, "face_detector", settings.detector),
        plugin_info(registry, "face_encoder", settings.filter_encoder),
        plugin_info(registry, "sampler", settings.sampler),
        plugin_info(registry, "denoiser_backend", settings.backend),
    ]
    if identity_encoder != settings.filter_encoder:
        plugins.append(plugin_info(registry, "face_encoder", identity_encoder))
    if settings.style_prompts:
        plugins.append(plugin_info(registry, "conditioner", "text"))
        plugins.append(plugin_info(registry, "text_encoder", str(config.get("text_encoder"))))

    inputs, kept, skipped = [], [], []
    for mugshot in mugshots:
        try:
            digest = sha256_file(mugshot.path, "mugshot")
        except (InputError, OSError) as exc:
            why = _unreadable(exc, mugshot.path)
            skipped.append({"key": mugshot.key, "identity": mugshot.identity, "reason": why})
            continue
        kept.append(mugshot)
        inputs.append({**mugshot.to_json(), "sha256": digest})
    if not kept:
        raise InputError(f"none of the {len(mugshots)} mugshots can be read")
    by_identity: dict[str, list[Mugshot]] = {}
    for mugshot in sorted(kept, key=lambda m: (m.identity, m.key)):
        by_identity.setdefault(mugshot.identity, []).append(mugshot)
    names = list(by_identity)
    shards = tuple(
        Shard(
            i,
            tuple(
                m for name in names[start : start + settings.shard_size] for m in by_identity[name]
            ),
        )
        for i, start in enumerate(range(0, len(names), settings.shard_size))
    )
    output_settings = {k: v for k, v in settings.to_json().items() if k != "device"}
    if output_settings["clip"] is not None:
        output_settings["clip"] = str(Path(output_settings["clip"]).resolve())
    description = {
        "format": "facefit-augment-job/1",
        "facefit": __version__,
        "settings": output_settings,
        "model": {
            "path": str(model_dir),
            "files": model_files(model_dir),
            "identity_encoder": identity_encoder,
            "reference_image": bool(config.get("reference_image", False)),
            "conditions": generator_conditions(config, settings),
        },
        "plugins": plugins,
        "source": source or {},
        "inputs": inputs,
    }
    if settings.clip is not None:
        description["model"]["clip"] = _checkpoint_files(Path(settings.clip))
    return Job(settings, model_dir, shards, description, tuple(skipped))


def _unreadable(exc: BaseException, path: Path) -> str:
    """Why an input file could not be hashed, in a few words (for the skip list)."""
    text = str(exc) if isinstance(exc, InputError) else str(exc.strerror)
    if isinstance(exc, FileNotFoundError) or text.endswith("not found"):
        return "file not found"
    return text[len(str(path)) + 2 :] if text.startswith(f"{path}: ") else text
