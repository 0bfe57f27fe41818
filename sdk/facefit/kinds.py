"""The kinds of plugin facefit knows: the one table everything else derives from.

Each :class:`Kind` names the interface an implementation subclasses, the hook that
registers it (``register_<plural>``), the registry's typed methods for it
(``create_<name>``, ``list_<plural>``), the conformance mixin in
:mod:`facefit.testing` (``<Interface>Tests``) and the options the host offers it.
:mod:`facefit.hookspecs`, :mod:`facefit.registry` and :mod:`facefit.testing` read
this table, and ``tests/test_meta.py`` checks that the hook reference in
``docs/writing-plugins.md`` covers every kind, so adding a kind is one row here
plus the code each of those checks names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from facefit import interfaces

__all__ = ["KINDS", "Kind", "hook_reference", "kind"]


@dataclass(frozen=True)
class Kind:
    """One kind of plugin."""

    name: str
    """The kind's name in the registry and in errors, e.g. ``"face_encoder"``."""
    interface: type
    """The base class every implementation of the kind derives from."""
    plural: str
    """Used in the hook and list method names, e.g. ``"face_encoders"``."""
    registers: str
    """What an implementation is, in words, for the docs."""
    method: str
    """The abstract method(s) an implementation writes, for the docs."""
    builtins: tuple[str, ...] = ()
    """Names of facefit's own implementations, for the docs (not a limit)."""
    host_options: Mapping[str, str] = field(default_factory=dict)
    """The options the host may pass besides the user's, with what each holds. An
    implementation takes those it names in its ``host_options`` class attribute."""

    @property
    def hook(self) -> str:
        """The hook that registers implementations of this kind."""
        return f"register_{self.plural}"

    @property
    def human(self) -> str:
        """The kind in words, for messages: ``"face encoder"``."""
        return self.name.replace("_", " ")

    @property
    def tests(self) -> str:
        """The name of the conformance mixin in :mod:`facefit.testing`."""
        return f"{self.interface.__name__}Tests"


_CONDITIONER_HOST = MappingProxyType(
    {
        "image_size": "the generator's image side in pixels (int)",
        "registry": "the pipeline's Registry, to create encoders by name",
        "encoder": "the generator's text or identity encoder: a plugin name or an instance",
        "detector": "the pipeline's face detector's plugin name",
    }
)

KINDS: tuple[Kind, ...] = (
    Kind(
        "face_detector",
        interfaces.FaceDetector,
        "face_detectors",
        "face detectors with 5 landmarks",
        "detect(image) -> list[Detection]",
        ("yunet",),
    ),
    Kind(
        "face_encoder",
        interfaces.FaceEncoder,
        "face_encoders",
        "identity encoders of aligned faces",
        "embed_aligned(faces) -> (N, dim)",
        ("sface", "dlib", "clip", "adaface", "sketch-matcher"),
    ),
    Kind(
        "text_encoder",
        interfaces.TextEncoder,
        "text_encoders",
        "text encoders",
        "encode(texts) -> TextEmbedding",
        ("minilm", "clip"),
    ),
    Kind(
        "sketch_extractor",
        interfaces.SketchExtractor,
        "sketch_extractors",
        "photo → line drawing",
        "extract(image) -> grey drawing",
        ("simple-sketch", "hed"),
    ),
    Kind(
        "conditioner",
        interfaces.Conditioner,
        "conditioners",
        "evidence → generator condition, one per modality",
        "encode(evidence) -> Condition",
        ("sketch", "lq", "text", "reference"),
        _CONDITIONER_HOST,
    ),
    Kind(
        "sampler",
        interfaces.Sampler,
        "samplers",
        "scheduler + guidance loops",
        "sample(denoiser, conditions, …) -> images",
        ("ddim", "ddpm", "dpm-solver"),
        MappingProxyType({"generator": "the pipeline's FaceGenerator (facefit.generator)"}),
    ),
    Kind(
        "retriever",
        interfaces.Retriever,
        "retrievers",
        "nearest-neighbour search",
        "add(labels, vectors), search(queries, k)",
        ("exact", "hnswlib", "scann", "milvus"),
    ),
    Kind(
        "loss",
        interfaces.Loss,
        "losses",
        "training objectives",
        "__call__(LossInputs) -> scalar",
        ("diffusion", "identity", "adaface"),
    ),
    Kind(
        "denoiser_backend",
        interfaces.DenoiserBackend,
        "denoiser_backends",
        "UNet runtimes",
        "__call__(sample, timestep, tokens) -> noise prediction (B, 3, S, S)",
        ("eager", "compiled", "onnxruntime", "tensorrt"),
        MappingProxyType({"model": "the generator's denoiser (a torch.nn.Module)"}),
    ),
)
"""Every kind of plugin, in the order ``facefit plugins`` lists them."""

_BY_NAME = {k.name: k for k in KINDS}


def kind(name: str) -> Kind:
    """The :class:`Kind` called ``name``, or a :class:`~facefit.errors.PluginError`."""
    from facefit.errors import PluginError

    try:
        return _BY_NAME[name]
    except KeyError:
        raise PluginError(
            f"unknown kind of plugin {name!r}; known: {', '.join(_BY_NAME)}"
        ) from None


def hook_reference() -> str:
    """The hook reference table of ``docs/writing-plugins.md``, made from :data:`KINDS`.

    ``tests/test_kinds.py`` checks that the guide holds it exactly as made here.
    """
    rows = [
        "| hook | registers | interface | the method you write | host options | conformance kit |",
        "|---|---|---|---|---|---|",
    ]
    for k in KINDS:
        builtins = ", ".join(f"`{b}`" for b in k.builtins)
        host = ", ".join(f"`{o}`" for o in k.host_options) or "—"
        rows.append(
            f"| `{k.hook}` | {k.registers} ({builtins}) | `{k.interface.__name__}` | "
            f"`{k.method}` | {host} | `{k.tests}` |"
        )
    return "\n".join(rows) + "\n"
