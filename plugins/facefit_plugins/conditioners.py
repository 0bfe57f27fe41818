"""Conditioners ``sketch``, ``lq``, ``text`` and ``reference``: evidence → :class:`Condition`.

Spatial evidence is expected framed like the generator's aligned crops (the
5-point template of :mod:`facefit.imaging.faces` at any size); it is resized to
``image_size``. The text and identity conditioners take their encoder from the
plugin registry by name (``encoder="minilm"``, ``encoder="sface"``) or as an
instance, and load it on first use; pass ``registry=`` to use a registry other
than the installed plugins (tests register a tiny encoder that way).

All conversions go through :mod:`facefit.generator.conditions`, the same code
that makes training batches, so evidence reaches the generator as in training.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from facefit import hookimpl
from facefit.interfaces import Conditioner
from facefit.types import Condition, Evidence


def _registry(registry: Any) -> Any:
    if registry is not None:
        return registry
    from facefit.registry import Registry

    return Registry.load()


class SketchConditioner(Conditioner):
    """A drawing of the face → a ``(1, S, S)`` grey map in [-1, 1] (dark lines on white).

    ``normalize`` brings scanned or photographed sketches to the training
    convention first (grey, dark on white, contrast stretched:
    :func:`facefit.imaging.sketch.normalize_sketch`).
    """

    name: ClassVar[str] = "sketch"
    modality: ClassVar[str] = "sketch"
    channels: ClassVar[int] = 1

    host_options: ClassVar[tuple[str, ...]] = ("image_size",)

    def __init__(self, image_size: int = 64, normalize: bool = True) -> None:
        self.image_size = int(image_size)
        self.normalize = bool(normalize)

    def encode(self, evidence: Evidence) -> Condition:
        from facefit.generator.conditions import sketch_tensor
        from facefit.imaging.sketch import normalize_sketch, to_grey

        sketch = evidence.sketch
        grey = normalize_sketch(sketch) if self.normalize else to_grey(sketch, "evidence sketch")
        return Condition("sketch", spatial=sketch_tensor(grey, self.image_size)[0])


class LowQualityConditioner(Conditioner):
    """A low-quality image (e.g. 8×8 or 16×16) → ``(3, S, S)`` upsampled bicubically."""

    name: ClassVar[str] = "lq"
    modality: ClassVar[str] = "lq"
    channels: ClassVar[int] = 3

    host_options: ClassVar[tuple[str, ...]] = ("image_size",)

    def __init__(self, image_size: int = 64) -> None:
        self.image_size = int(image_size)

    def encode(self, evidence: Evidence) -> Condition:
        from facefit.generator.conditions import lq_tensor

        image = evidence.lq
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return Condition("lq", spatial=lq_tensor(image[None], self.image_size)[0])


class TextConditioner(Conditioner):
    """A description → the text encoder's tokens ``(num_tokens, dim)``, padding zeroed,
    and the attributes it states as the condition's vector
    (:func:`facefit.text_agreement.attribute_features`)."""

    name: ClassVar[str] = "text"
    modality: ClassVar[str] = "text"
    host_options: ClassVar[tuple[str, ...]] = ("image_size", "registry", "encoder")

    def __init__(
        self,
        encoder: Any = "minilm",
        encoder_options: dict[str, Any] | None = None,
        registry: Any = None,
        image_size: int = 64,
    ) -> None:
        if isinstance(encoder, str):
            encoder = _registry(registry).create("text_encoder", encoder, **(encoder_options or {}))
        self.encoder = encoder
        self.num_tokens = int(encoder.num_tokens)
        self.dim = int(encoder.dim)
        self.image_size = int(image_size)

    def encode(self, evidence: Evidence) -> Condition:
        import torch

        from facefit.text_agreement import attribute_features, parse_description

        out = self.encoder.encode([evidence.text])
        tokens = out.tokens[0] * out.mask[0][:, None]
        stated = attribute_features(parse_description(evidence.text))
        return Condition(
            "text",
            tokens=torch.from_numpy(np.ascontiguousarray(tokens, np.float32)),
            vector=torch.from_numpy(stated),
        )


class ReferenceConditioner(Conditioner):
    """A face standing for an identity → its identity embedding as one token ``(1, dim)``.

    A square image is taken as an aligned crop (a gallery crop or a generated
    candidate) and resized to the encoder's input; any other image is detected and
    aligned first with ``detector``.
    """

    name: ClassVar[str] = "reference"
    modality: ClassVar[str] = "reference"
    num_tokens: ClassVar[int] = 1
    host_options: ClassVar[tuple[str, ...]] = ("image_size", "registry", "encoder", "detector")

    def __init__(
        self,
        encoder: Any = "sface",
        detector: str = "yunet",
        encoder_options: dict[str, Any] | None = None,
        registry: Any = None,
        image_size: int = 64,
    ) -> None:
        self._registry = registry
        if isinstance(encoder, str):
            self._registry = registry = _registry(registry)
            encoder = registry.create("face_encoder", encoder, **(encoder_options or {}))
        self.encoder = encoder
        self.detector_name = detector
        self._embedder: Any = None
        self.dim = int(encoder.dim)
        self.image_size = int(image_size)

    def aligned(self, face: np.ndarray) -> np.ndarray:
        """The face as an aligned ``(input_size, input_size, 3)`` crop for the encoder."""
        from facefit.imaging.faces import FaceEmbedder, resize_aligned

        size = self.encoder.input_size
        height, width = face.shape[:2]
        if height == width:
            return resize_aligned(face, size)
        if self._embedder is None:
            detector = _registry(self._registry).create("face_detector", self.detector_name)
            self._embedder = FaceEmbedder(detector, self.encoder)
        return self._embedder.align(face, size=size, source="evidence reference face")

    def encode(self, evidence: Evidence) -> Condition:
        from facefit.generator.conditions import reference_condition

        crop = self.aligned(evidence.reference)
        return reference_condition(self.encoder.embed(crop[None]), crop, self.image_size, self.dim)


@hookimpl
def register_conditioners(register) -> None:
    register(SketchConditioner)
    register(LowQualityConditioner)
    register(TextConditioner)
    register(ReferenceConditioner)
