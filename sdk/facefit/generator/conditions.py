"""Evidence as the generator's tensors, identical in training and at sampling time.

The conditioners (:mod:`facefit_plugins.conditioners`) and the training batches
(:mod:`facefit.generator.training.data`) both go through the converters here, so a sketch or
a low-quality image reaches the network the same way whether it came from a
witness or from the training pack. :class:`ConditionTensors` is the batched form
the model consumes: one value tensor and one presence flag per modality, plus the
target domain. An absent modality is zeros with presence 0, which is exactly what
:meth:`facefit.types.Condition.null` gives, so dropping a modality in training and
leaving it out at sampling time look the same to the network.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np

from facefit.errors import InputError
from facefit.imaging.sketch import to_grey
from facefit.text_agreement import ATTRIBUTE_FEATURES
from facefit.types import MODALITIES, Condition

if TYPE_CHECKING:
    import torch

SKETCH_STYLES = 3
"""FS2K's three artist styles; ``sketch-styleN`` asks for style N."""

DOMAINS = ("photo", "sketch", *(f"sketch-style{n}" for n in range(SKETCH_STYLES)))
"""What the generator can render; the index is the domain token's id. ``sketch`` is
a sketch in any style (the model picks), ``sketch-styleN`` one in FS2K's style N."""


def sketch_domain(style: int | None = None) -> str:
    """The domain name of a sketch in FS2K ``style`` (0, 1, 2), or in any style (None)."""
    if style is None:
        return "sketch"
    if not 0 <= int(style) < SKETCH_STYLES:
        raise InputError(f"sketch style must be 0 to {SKETCH_STYLES - 1} (FS2K's), got {style!r}")
    return f"sketch-style{int(style)}"


DOMAIN_MODALITY = "domain"
"""A :class:`Condition` with this modality picks the target domain; guidance keeps it."""


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W, C)`` or ``(N, H, W)`` → float ``(N, C, H, W)`` in [-1, 1]."""
    import torch

    array = np.asarray(images)
    if array.ndim == 3:
        array = array[..., None]
    if not array.flags.writeable:  # evidence arrays are frozen; torch wants its own copy
        array = array.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    return tensor.float().div_(127.5).sub_(1.0)


def tensor_to_images(tensor: torch.Tensor) -> np.ndarray:
    """Float ``(N, C, H, W)`` in [-1, 1] → uint8 ``(N, H, W, C)`` (C = 1 squeezed)."""
    import torch

    array = ((tensor.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    array = array.to(device="cpu", dtype=torch.uint8).permute(0, 2, 3, 1).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def resize(tensor: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(N, C, h, w)`` to ``size``×``size``; antialiased when shrinking."""
    import torch.nn.functional as F

    if tensor.shape[-2:] == (size, size):
        return tensor
    shrinking = min(tensor.shape[-2:]) > size
    if shrinking:
        return F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True)
    return F.interpolate(tensor, size=(size, size), mode=mode, align_corners=False)


def sketch_tensor(sketches: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 sketches → ``(N, 1, S, S)`` in [-1, 1].

    Takes one sketch ``(H, W)`` or ``(H, W, 3)``, or a batch ``(N, H, W)`` or
    ``(N, H, W, 3)``; colour is reduced to grey.
    """
    array = np.asarray(sketches)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3):
        array = array[None]
    if array.ndim == 4:
        array = np.stack([to_grey(a) for a in array])
    return resize(images_to_tensor(array), image_size).clamp_(-1, 1)


def lq_tensor(images: torch.Tensor | np.ndarray, image_size: int) -> torch.Tensor:
    """Low-quality images → ``(N, 3, S, S)`` in [-1, 1], upsampled bicubically.

    Takes uint8 ``(N, h, w, 3)`` (a camera frame) or float ``(N, 3, h, w)`` in
    [-1, 1] (training's on-the-fly copies, already quantised to 8 bits).
    """
    tensor = images if not isinstance(images, np.ndarray) else images_to_tensor(images)
    return resize(tensor, image_size, mode="bicubic").clamp_(-1, 1)


def degrade(x: torch.Tensor, size: int) -> torch.Tensor:
    """A low-quality copy of ``(N, 3, S, S)`` images: area-downsampled to ``size`` and
    quantised to 8 bits, as a camera frame of that size would be stored."""
    import torch.nn.functional as F

    small = F.adaptive_avg_pool2d(x, size)
    return ((small + 1) * 127.5).round_().clamp_(0, 255).div_(127.5).sub_(1)


def domain_condition(domain: str = "photo") -> Condition:
    """The condition that makes the generator render ``domain`` (one of :data:`DOMAINS`)."""
    import torch

    if domain not in DOMAINS:
        raise InputError(f"unknown target domain {domain!r}; known: {', '.join(DOMAINS)}")
    onehot = torch.zeros(1, len(DOMAINS))
    onehot[0, DOMAINS.index(domain)] = 1.0
    return Condition(DOMAIN_MODALITY, tokens=onehot)


@dataclass(frozen=True)
class ConditionTensors:
    """A batch of evidence for the generator: values and presence per modality.

    Shapes for batch ``B`` and image size ``S``: ``sketch`` ``(B, 1, S, S)``,
    ``lq`` ``(B, 3, S, S)``, ``reference`` ``(B, identity_dim)``, ``text``
    ``(B, text_tokens, text_dim)``, ``reference_image`` ``(B, 3, S, S)`` (the aligned
    reference face; only v2 models look at it), ``text_attributes`` ``(B, A)`` (what
    the description states, :data:`~facefit.text_agreement.ATTRIBUTE_FEATURES`; present
    with the text; only models with ``text_attributes`` read it); each ``*_present`` is
    ``(B,)`` float (1 or 0); ``domain`` ``(B,)`` long (an index into :data:`DOMAINS`).
    Values of absent items are zero.
    """

    sketch: torch.Tensor
    sketch_present: torch.Tensor
    lq: torch.Tensor
    lq_present: torch.Tensor
    reference: torch.Tensor
    reference_present: torch.Tensor
    text: torch.Tensor
    text_present: torch.Tensor
    domain: torch.Tensor
    reference_image: torch.Tensor | None = None
    reference_image_present: torch.Tensor | None = None
    text_attributes: torch.Tensor | None = None

    def __post_init__(self) -> None:
        # absent unless given, so code written before the reference image keeps working
        if self.reference_image is None:
            object.__setattr__(self, "reference_image", self.lq.new_zeros(self.lq.shape))
        if self.reference_image_present is None:
            object.__setattr__(
                self, "reference_image_present", self.lq_present.new_zeros(self.lq_present.shape)
            )
        if self.text_attributes is None:
            shape = (self.text_present.shape[0], len(ATTRIBUTE_FEATURES))
            object.__setattr__(self, "text_attributes", self.text_present.new_zeros(shape))

    @property
    def batch_size(self) -> int:
        return int(self.domain.shape[0])

    def present(self, modality: str) -> torch.Tensor:
        return getattr(self, f"{modality}_present")

    def drop(self, modality: str, mask: torch.Tensor) -> ConditionTensors:
        """A copy with ``modality`` removed where ``mask`` (``(B,)`` bool) is True
        (the text's stated attributes go with the text)."""
        keep = (~mask).to(self.present(modality).dtype)
        names = (modality, "text_attributes") if modality == "text" else (modality,)
        values = {f"{modality}_present": self.present(modality) * keep}
        for name in names:
            value = getattr(self, name)
            values[name] = value * keep.view((-1,) + (1,) * (value.dim() - 1))
        return replace(self, **values)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ConditionTensors:
        moved = {}
        for f in fields(self):
            tensor = getattr(self, f.name)
            float_dtype = dtype if (dtype is not None and tensor.is_floating_point()) else None
            moved[f.name] = tensor.to(device=device, dtype=float_dtype)
        return ConditionTensors(**moved)

    @staticmethod
    def cat(parts: list[ConditionTensors]) -> ConditionTensors:
        """Concatenate batches (e.g. the null and the conditional halves for guidance)."""
        import torch

        return ConditionTensors(
            **{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(parts[0])}
        )

    def repeat(self, n: int) -> ConditionTensors:
        """Each item repeated ``n`` times (a batch of ``n`` candidates from one evidence)."""
        return ConditionTensors(
            **{f.name: getattr(self, f.name).repeat_interleave(n, dim=0) for f in fields(self)}
        )


def empty_conditions(
    batch: int,
    *,
    image_size: int,
    identity_dim: int,
    text_tokens: int,
    text_dim: int,
    domain: int = 0,
) -> ConditionTensors:
    """A batch with every modality absent, rendering ``DOMAINS[domain]``."""
    import torch

    zeros = torch.zeros(batch)
    return ConditionTensors(
        sketch=torch.zeros(batch, 1, image_size, image_size),
        sketch_present=zeros.clone(),
        lq=torch.zeros(batch, 3, image_size, image_size),
        lq_present=zeros.clone(),
        reference=torch.zeros(batch, identity_dim),
        reference_present=zeros.clone(),
        text=torch.zeros(batch, text_tokens, text_dim),
        text_present=zeros.clone(),
        domain=torch.full((batch,), domain, dtype=torch.long),
        reference_image=torch.zeros(batch, 3, image_size, image_size),
        reference_image_present=zeros.clone(),
        text_attributes=torch.zeros(batch, len(ATTRIBUTE_FEATURES)),
    )


_EXPECTED = {
    "sketch": ("spatial", lambda c: (1, c["image_size"], c["image_size"])),
    "lq": ("spatial", lambda c: (3, c["image_size"], c["image_size"])),
    "reference": ("tokens", lambda c: (1, c["identity_dim"])),
    "text": ("tokens", lambda c: (c["text_tokens"], c["text_dim"])),
}


def conditions_to_tensors(
    conditions: list[Condition],
    *,
    image_size: int,
    identity_dim: int,
    text_tokens: int,
    text_dim: int,
) -> ConditionTensors:
    """One piece of evidence, as :class:`Condition` s, to a batch of one.

    Missing modalities and null conditions become absent; a ``domain`` condition
    (:func:`domain_condition`) picks the target domain (default photo). A
    ``reference`` condition may carry the aligned reference face as its spatial
    map ``(3, S, S)`` as well as the identity embedding as its tokens, and a ``text``
    condition the attributes the description states as its vector.
    """
    import torch

    sizes = {
        "image_size": image_size,
        "identity_dim": identity_dim,
        "text_tokens": text_tokens,
        "text_dim": text_dim,
    }
    out = empty_conditions(1, **sizes)
    values: dict[str, torch.Tensor] = {}
    for cond in conditions:
        if cond.modality == DOMAIN_MODALITY:
            values["domain"] = cond.tokens.argmax(dim=-1).reshape(1).long()
            continue
        if cond.modality not in MODALITIES:
            raise InputError(
                f"the generator takes conditions for {', '.join(MODALITIES)} and "
                f"{DOMAIN_MODALITY!r}; got {cond.modality!r}"
            )
        kind, expected = _EXPECTED[cond.modality]
        tensor = getattr(cond, kind)
        want = expected(sizes)
        if tensor is None or tuple(tensor.shape) != want:
            got = None if tensor is None else tuple(tensor.shape)
            raise InputError(
                f"{cond.modality} condition: the generator expects {kind} of shape {want}, "
                f"got {got}; configure the {cond.modality!r} conditioner for this model "
                f"(image_size={image_size}, its encoder's dimensions)"
            )
        if cond.modality == "reference" and cond.spatial is not None and cond.present:
            values["reference_image"] = _reference_image(cond.spatial, image_size)
            values["reference_image_present"] = torch.ones(1)
        if cond.modality == "text" and cond.vector is not None and cond.present:
            values["text_attributes"] = _text_attributes(cond.vector)
        if cond.present:
            value = tensor.float()
            if cond.modality == "reference":  # one identity vector per item
                value = value.reshape(identity_dim)
            values[cond.modality] = value.unsqueeze(0)
            values[f"{cond.modality}_present"] = torch.ones(1)
    return replace(out, **values)


def _text_attributes(vector: torch.Tensor) -> torch.Tensor:
    if tuple(vector.shape) != (len(ATTRIBUTE_FEATURES),):
        raise InputError(
            f"text condition: the stated-attribute vector must have {len(ATTRIBUTE_FEATURES)} "
            f"entries ({', '.join(ATTRIBUTE_FEATURES)}), got {tuple(vector.shape)}"
        )
    return vector.float().reshape(1, -1)


def _reference_image(spatial: torch.Tensor, image_size: int) -> torch.Tensor:
    if spatial.shape[0] != 3:
        raise InputError(
            f"reference condition: the face image must be (3, H, W) in [-1, 1], "
            f"got {tuple(spatial.shape)}"
        )
    return resize(spatial.float()[None], image_size).clamp_(-1, 1)


def reference_condition(
    vector: np.ndarray, face: np.ndarray | None, image_size: int, dim: int
) -> Condition:
    """A reference face as the generator takes it.

    The identity embedding ``vector`` becomes the condition's one token; ``face``
    (an aligned uint8 RGB crop in the encoders' 5-point template, any size), when
    given, becomes its spatial map: resized to ``image_size``, in [-1, 1]. Models
    with ``reference_image`` look at it; older ones take only the token.
    """
    import torch

    vector = np.asarray(vector, np.float32).reshape(1, -1)
    if vector.shape != (1, dim):
        raise InputError(f"reference encoder returned {vector.shape}, expected (1, {dim})")
    spatial = None
    if face is not None:
        spatial = resize(images_to_tensor(np.asarray(face)[None]), image_size)[0].clamp_(-1, 1)
    return Condition("reference", tokens=torch.from_numpy(vector.copy()), spatial=spatial)
