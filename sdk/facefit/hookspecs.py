"""Hook specifications: the whole contract between facefit and a plugin.

Every hook only *registers* implementations. facefit calls each hook once, when
a :class:`~facefit.registry.Registry` is built, passing a ``register`` callback;
the plugin calls it once per implementation::

    from facefit import hookimpl

    @hookimpl
    def register_face_encoders(register):
        register(MyEncoder)                 # name taken from MyEncoder.name
        register(make_other, name="other")  # or any factory with a name

``register(factory, name=None)`` takes a class (a subclass of the interface named
below) or any callable returning an instance, and the name to create it by. The
factory's keyword arguments are the options users give in a config file or to
``create_*``. Import heavy libraries inside the factory, not at module level:
listing plugins must stay fast. Hooks are never called while generating.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "facefit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]


@hookspec
def register_face_detectors(register: Register) -> None:
    """Register :class:`~facefit.interfaces.FaceDetector` implementations (e.g. ``yunet``)."""


@hookspec
def register_face_encoders(register: Register) -> None:
    """Register :class:`~facefit.interfaces.FaceEncoder` implementations (``sface``, ``dlib``…)."""


@hookspec
def register_text_encoders(register: Register) -> None:
    """Register :class:`~facefit.interfaces.TextEncoder` implementations (``minilm``…)."""


@hookspec
def register_sketch_extractors(register: Register) -> None:
    """Register :class:`~facefit.interfaces.SketchExtractor` implementations (``simple-sketch``…)."""


@hookspec
def register_conditioners(register: Register) -> None:
    """Register :class:`~facefit.interfaces.Conditioner` implementations, one per modality."""


@hookspec
def register_samplers(register: Register) -> None:
    """Register :class:`~facefit.interfaces.Sampler` implementations (``ddim``…)."""


@hookspec
def register_retrievers(register: Register) -> None:
    """Register :class:`~facefit.interfaces.Retriever` implementations (``exact``, ``hnswlib``)."""


@hookspec
def register_losses(register: Register) -> None:
    """Register :class:`~facefit.interfaces.Loss` implementations (``diffusion``, ``identity``…)."""


@hookspec
def register_denoiser_backends(register: Register) -> None:
    """Register :class:`~facefit.interfaces.DenoiserBackend` implementations (``eager``…)."""


HOOKS: dict[str, str] = {
    "face_detector": "register_face_detectors",
    "face_encoder": "register_face_encoders",
    "text_encoder": "register_text_encoders",
    "sketch_extractor": "register_sketch_extractors",
    "conditioner": "register_conditioners",
    "sampler": "register_samplers",
    "retriever": "register_retrievers",
    "loss": "register_losses",
    "denoiser_backend": "register_denoiser_backends",
}
"""``{kind: hook name}``: the kind of implementation each hook registers."""
