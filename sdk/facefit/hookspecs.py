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

What the host gives an implementation besides the user's options (a conditioner's
``image_size``, a sampler's ``generator``, a backend's ``model``) and the optional
abilities it may ask for (a sampler's batched ``denoise``, a retriever's search
breadth) are declared on the interfaces in :mod:`facefit.interfaces`; the kinds and
their host options are listed in :data:`facefit.kinds.KINDS`, from which
:data:`HOOKS` is made.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from facefit.kinds import KINDS

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


HOOKS: dict[str, str] = {k.name: k.hook for k in KINDS}
"""``{kind: hook name}``: the kind of implementation each hook registers."""


def _check_specs() -> None:
    """Every kind has a hook specification here, and every specification is a kind's."""
    specs = {n for n, f in globals().items() if getattr(f, f"{PROJECT}_spec", None) is not None}
    if specs != set(HOOKS.values()):
        raise RuntimeError(
            f"facefit.hookspecs and facefit.kinds disagree: specs without a kind "
            f"{sorted(specs - set(HOOKS.values()))}, kinds without a spec "
            f"{sorted(set(HOOKS.values()) - specs)}"
        )


_check_specs()
