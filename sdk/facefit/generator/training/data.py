"""Training data: the compact training pack and the batches drawn from it.

A *training pack* is one ``.npz`` file holding everything training needs, already
aligned and encoded, so training never touches the raw data folder, a detector or
an encoder (and the file is small enough to carry to a GPU machine):

==================  ===========================  =====================================
array               shape, dtype                 what
==================  ===========================  =====================================
``photos``          (N, S, S, 3) uint8           aligned face crops (the targets)
``sketches``        (N, S, S) uint8              sketch evidence, dark lines on white
``real_sketch``     (N,) bool                    the sketch is an artist's (FS2K), so
                                                 it can also be a target (domain sketch)
``styles``          (N,) int8                    the artist's sketch style (FS2K's 0/1/2),
                                                 -1 unknown (optional: older packs lack it)
``embeddings``      (N, D) float16               identity embedding of the photo
``embeddings_flip`` (N, D) float16               … of the mirrored photo
``text_index``      (N,) int32                   row of ``text_tokens``; -1: no text
``text_tokens``     (T, L, Dt) float16           text-encoder tokens (padding zeroed)
``sentences``       (T,) str                     the sentences encoded
``identities``      (N,) str                     identity labels: the person (FS2K, by
                                                 :mod:`facefit.datasets.persons`) or CelebA identity
``sources``         (N,) str                     ``fs2k`` or ``celeba``
``meta``            () str                       JSON: sizes, encoders, split fingerprints
==================  ===========================  =====================================

:class:`TrainingBatches` draws batches with on-the-fly augmentation: mirrored
copies, low-quality copies at random sizes, the target domain, the reference face
image, and each modality dropped independently so that any subset of evidence (and
guidance) works.

The reference face image of an item is, for a photo target, another photo of the
same identity (never the target itself), and with probability ``lookalike`` a
near neighbour of another identity (by identity embedding), so that the model
learns to take from the reference only what the other evidence leaves open
instead of copying it; for an artist-sketch target it is the pair's own photo, so
mugshot-to-sketch rendering is learned directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.errors import InputError
from facefit.generator.conditions import (
    ConditionTensors,
    degrade,
    images_to_tensor,
    lq_tensor,
)
from facefit.text_agreement import ATTRIBUTE_FEATURES, attribute_features, parse_description

if TYPE_CHECKING:
    import torch

PACK_VERSION = 1
_ARRAYS = (
    "photos",
    "sketches",
    "real_sketch",
    "embeddings",
    "embeddings_flip",
    "text_index",
    "text_tokens",
    "sentences",
    "identities",
    "sources",
)


@dataclass(frozen=True)
class TrainingPack:
    """Aligned crops with their precomputed conditions (see the module docstring)."""

    photos: np.ndarray
    sketches: np.ndarray
    real_sketch: np.ndarray
    embeddings: np.ndarray
    embeddings_flip: np.ndarray
    text_index: np.ndarray
    text_tokens: np.ndarray
    sentences: np.ndarray
    identities: np.ndarray
    sources: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    styles: np.ndarray | None = None
    """Sketch style per item (-1 unknown); None is read as all unknown."""

    def __post_init__(self) -> None:
        n = len(self.photos)
        if self.styles is None:
            object.__setattr__(self, "styles", np.full(n, -1, np.int8))
        if self.photos.ndim != 4 or self.photos.shape[1] != self.photos.shape[2]:
            raise InputError(f"training pack: photos must be (N, S, S, 3), got {self.photos.shape}")
        for name in (
            "sketches",
            "real_sketch",
            "styles",
            "embeddings",
            "embeddings_flip",
            "text_index",
        ):
            if len(getattr(self, name)) != n:
                raise InputError(
                    f"training pack: {name} has {len(getattr(self, name))} rows, photos {n}"
                )
        if self.text_tokens.ndim != 3 or len(self.text_tokens) != len(self.sentences):
            raise InputError(
                f"training pack: text_tokens must be (T, L, D) with one row per sentence, "
                f"got {self.text_tokens.shape} for {len(self.sentences)} sentences"
            )
        if n and self.text_index.max(initial=-1) >= len(self.text_tokens):
            raise InputError("training pack: text_index points past text_tokens")

    def __len__(self) -> int:
        return len(self.photos)

    @property
    def image_size(self) -> int:
        return int(self.photos.shape[1])

    @property
    def identity_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def text_shape(self) -> tuple[int, int]:
        """``(tokens, dim)`` of the text condition."""
        return int(self.text_tokens.shape[1]), int(self.text_tokens.shape[2])

    def save(self, path: str | Path) -> Path:
        """Write the pack as one compressed ``.npz``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"version": PACK_VERSION, **self.meta}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp,
            **{k: getattr(self, k) for k in (*_ARRAYS, "styles")},
            meta=np.array(json.dumps(meta)),
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainingPack:
        """Read a pack written by :meth:`save` (``facefit train pack``)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(
                f"{path}: training pack not found; build one with `facefit train pack`"
            )
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (*_ARRAYS, "meta") if k not in data.files]
            if missing:
                raise InputError(f"{path}: not a training pack (missing {', '.join(missing)})")
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != PACK_VERSION:
                raise InputError(
                    f"{path}: training pack version {meta.get('version')}, this facefit reads "
                    f"version {PACK_VERSION}; rebuild it with `facefit train pack`"
                )
            styles = data["styles"] if "styles" in data.files else None
            return cls(**{k: data[k] for k in _ARRAYS}, meta=meta, styles=styles)


@dataclass(frozen=True)
class Augmentation:
    """How batches are drawn and degraded (the ``[data]`` table of a training config)."""

    flip: float = 0.5
    """Probability of mirroring an item (photo, sketch and identity together)."""
    lq_sizes: tuple[int, ...] = (8, 12, 16, 24, 32)
    """Sides of the low-quality copies, one drawn per item."""
    drop: dict[str, float] = field(
        default_factory=lambda: {
            "sketch": 0.3,
            "lq": 0.4,
            "text": 0.3,
            "reference": 0.5,
            "reference_image": 0.5,
        }
    )
    """Probability of dropping each modality, independently per item."""
    lookalike: float = 0.2
    """Probability that a photo target's reference image is a look-alike of another identity."""
    sketch_domain: float = 0.15
    """Probability that an item with an artist sketch is rendered as that sketch."""
    sketch_reference_image_drop: float | None = None
    """Probability of dropping the pair's photo as the reference image of a sketch target
    (mugshot → sketch); ``None``: ``drop["reference_image"]`` like every other item. A
    lower value shows the model the mugshot → sketch task more often."""
    text_only: float = 0.0
    """Probability that a photo target with a description keeps the description alone
    (sketch, low-quality copy, identity and reference image all dropped), so that a face
    from words alone is learned. Without it such items are rare: identity and pixels
    carry the gender and hair that the words state. 0 draws nothing (the same batches)."""
    style_drop: float = 0.3
    """Probability that a sketch target's style token is replaced by plain ``sketch``
    (so "a sketch in any style" works), always so when the style is unknown."""
    source_weights: dict[str, float] = field(default_factory=lambda: {"fs2k": 1.0, "celeba": 1.0})
    """Relative sampling weight of each source in the pack (all items of a source share it)."""

    def __post_init__(self) -> None:
        for name, p in {
            "flip": self.flip,
            "sketch_domain": self.sketch_domain,
            "style_drop": self.style_drop,
            "lookalike": self.lookalike,
            "sketch_reference_image_drop": self.sketch_reference_image_drop or 0.0,
            "text_only": self.text_only,
            **self.drop,
        }.items():
            if not 0.0 <= p <= 1.0:
                raise InputError(f"augmentation: {name} probability must be in [0, 1], got {p}")
        if not self.lq_sizes or min(self.lq_sizes) < 1:
            raise InputError(f"augmentation: lq_sizes must be positive sides, got {self.lq_sizes}")


class TrainingBatches:
    """Random training batches from a pack, reproducible from a ``torch.Generator``.

    Each call returns ``(x0, conditions)``: targets ``(B, 3, S, S)`` in [-1, 1] and
    :class:`ConditionTensors`. The pack stays in memory as uint8/fp16 and only the
    batch is converted, so a pack of tens of thousands of crops fits in little RAM.
    """

    def __init__(self, pack: TrainingPack, augmentation: Augmentation | None = None) -> None:
        import torch

        self.pack = pack
        self.aug = augmentation or Augmentation()
        self.size = pack.image_size
        self._photos = torch.from_numpy(pack.photos)
        self._sketches = torch.from_numpy(pack.sketches)
        self._real = torch.from_numpy(pack.real_sketch.astype(bool))
        self._styles = torch.from_numpy(pack.styles.astype(np.int64))
        self._emb = torch.from_numpy(pack.embeddings.astype(np.float32))
        self._emb_flip = torch.from_numpy(pack.embeddings_flip.astype(np.float32))
        self._text_index = torch.from_numpy(pack.text_index.astype(np.int64))
        self._text = torch.from_numpy(pack.text_tokens.astype(np.float32))
        self._stated = torch.from_numpy(  # what each sentence states, as the conditioner reads it
            np.stack([attribute_features(parse_description(str(s))) for s in pack.sentences])
            if len(pack.sentences)
            else np.zeros((0, len(ATTRIBUTE_FEATURES)), np.float32)
        )
        unknown = sorted(set(pack.sources.tolist()) - set(self.aug.source_weights))
        if unknown:
            raise InputError(
                f"augmentation: no source_weights for source(s) {', '.join(unknown)} in the pack"
            )
        weights = np.array([self.aug.source_weights[s] for s in pack.sources], np.float64)
        if len(pack) == 0 or weights.sum() <= 0:
            raise InputError("training pack: no items to draw (empty pack or all weights 0)")
        self._weights = torch.from_numpy(weights / weights.sum())
        self._same, self._lookalikes = _reference_rows(pack)

    def __call__(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, ConditionTensors]:
        import torch

        g = generator
        idx = torch.multinomial(self._weights, batch_size, replacement=True, generator=g)
        x0 = images_to_tensor(self._photos[idx].numpy())
        sketch = images_to_tensor(self._sketches[idx].numpy())
        flip = torch.rand(batch_size, generator=g) < self.aug.flip
        x0[flip] = x0[flip].flip(-1)
        sketch[flip] = sketch[flip].flip(-1)
        reference = torch.where(flip[:, None], self._emb_flip[idx], self._emb[idx])

        lq = torch.empty_like(x0)
        sizes = torch.tensor(self.aug.lq_sizes)[
            torch.randint(len(self.aug.lq_sizes), (batch_size,), generator=g)
        ]
        for side in sizes.unique().tolist():
            rows = sizes == side
            lq[rows] = lq_tensor(degrade(x0[rows], int(side)), self.size)

        text_index = self._text_index[idx]
        has_text = text_index >= 0
        text = torch.zeros(batch_size, *self._text.shape[1:])
        text[has_text] = self._text[text_index[has_text]]
        stated = torch.zeros(batch_size, len(ATTRIBUTE_FEATURES))
        stated[has_text] = self._stated[text_index[has_text]]

        x0_photo = x0.clone()
        # rendering the artist's sketch: the sketch (and a copy of the photo) would give it away
        to_sketch = self._real[idx] & (torch.rand(batch_size, generator=g) < self.aug.sketch_domain)
        x0[to_sketch] = sketch[to_sketch].expand(-1, 3, -1, -1)
        # domain 0 photo, 1 sketch in any style, 2 + s sketch in FS2K style s
        style = self._styles[idx]
        styled = (style >= 0) & (torch.rand(batch_size, generator=g) >= self.aug.style_drop)
        domain = torch.where(to_sketch, torch.where(styled, 2 + style.clamp(min=0), 1), 0)

        ones = torch.ones(batch_size)
        cond = ConditionTensors(
            sketch=sketch,
            sketch_present=ones.clone(),
            lq=lq,
            lq_present=ones.clone(),
            reference=reference,
            reference_present=ones.clone(),
            text=text,
            text_present=has_text.float(),
            domain=domain,
            text_attributes=stated,
        )
        cond = self._with_reference_image(cond, idx, x0_photo, to_sketch, g)
        cond = cond.drop("sketch", to_sketch).drop("lq", to_sketch)
        only = None  # photo targets that keep their description alone
        if self.aug.text_only > 0:
            only = has_text & ~to_sketch
            only &= torch.rand(batch_size, generator=g) < self.aug.text_only
        for modality in ("sketch", "lq", "text", "reference", "reference_image"):
            p = torch.full((batch_size,), self.aug.drop.get(modality, 0.0))
            if modality == "reference_image" and self.aug.sketch_reference_image_drop is not None:
                p[to_sketch] = self.aug.sketch_reference_image_drop
            if only is not None:
                p[only] = 0.0 if modality == "text" else 1.0
            cond = cond.drop(modality, torch.rand(batch_size, generator=g) < p)
        return x0, cond

    def _with_reference_image(
        self,
        cond: ConditionTensors,
        idx: torch.Tensor,
        photos: torch.Tensor,
        to_sketch: torch.Tensor,
        g: torch.Generator,
    ) -> ConditionTensors:
        """Attach each item's reference face image (see the module docstring)."""
        import torch

        batch = len(idx)
        image = torch.zeros_like(photos)
        present = torch.zeros(batch)
        draws = torch.rand(batch, 3, generator=g)
        for i in range(batch):
            if to_sketch[i]:  # mugshot → sketch: the pair's own photo
                image[i], present[i] = photos[i], 1.0
                continue
            row = int(idx[i])
            pool = self._lookalikes[row] if draws[i, 0] < self.aug.lookalike else self._same[row]
            if len(pool) == 0:
                continue
            pick = int(pool[int(draws[i, 1] * len(pool)) % len(pool)])
            face = images_to_tensor(self.pack.photos[pick : pick + 1])[0]
            image[i] = face.flip(-1) if draws[i, 2] < self.aug.flip else face
            present[i] = 1.0
        return replace(cond, reference_image=image, reference_image_present=present)


LOOKALIKES = 5
"""How many nearest other identities a look-alike reference is drawn from."""


def _reference_rows(pack: TrainingPack) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per row: the other rows of its identity, and its nearest rows of other identities."""
    labels = pack.identities
    groups: dict[str, list[int]] = {}
    for row, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(row)
    same = [
        np.array([r for r in groups[label] if r != row], np.int64)
        for row, label in enumerate(labels.tolist())
    ]
    vectors = pack.embeddings.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-6)
    lookalikes = []
    for start in range(0, len(vectors), 1024):
        sims = vectors[start : start + 1024] @ vectors.T
        sims[labels[start : start + 1024, None] == labels[None, :]] = -np.inf
        k = min(LOOKALIKES, max(0, len(vectors) - 1))
        top = np.argsort(-sims, axis=1)[:, :k]
        for row, cols in zip(sims, top):
            lookalikes.append(cols[np.isfinite(row[cols])])
    return same, lookalikes


def synthetic_pack(
    n: int = 32,
    *,
    image_size: int = 16,
    identity_dim: int = 8,
    text_tokens: int = 4,
    text_dim: int = 12,
    identities: int = 4,
    seed: int = 0,
) -> TrainingPack:
    """A small generated pack with learnable structure, for tests and dry runs.

    Each identity is a smooth colour pattern with its own embedding and sentence;
    photos are noisy copies, sketches their grey edges. Nothing here is a real face.
    """
    rng = np.random.default_rng(seed)
    ident = rng.integers(0, identities, size=n)
    base = rng.integers(40, 216, size=(identities, 4, 4, 3)).astype(np.float32)
    reps = -(-image_size // 4)
    patterns = np.repeat(np.repeat(base, reps, axis=1), reps, axis=2)[:, :image_size, :image_size]
    photos = np.clip(patterns[ident] + rng.normal(0, 6, (n, image_size, image_size, 3)), 0, 255)
    photos = photos.astype(np.uint8)
    grey = photos.astype(np.float32).mean(-1)
    edges = np.abs(np.diff(grey, axis=1, prepend=grey[:, :1])) + np.abs(
        np.diff(grey, axis=2, prepend=grey[:, :, :1])
    )
    sketches = np.clip(255 - 4 * edges, 0, 255).astype(np.uint8)
    centres = rng.normal(size=(identities, identity_dim))
    emb = centres[ident] + 0.1 * rng.normal(size=(n, identity_dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    flip = emb + 0.05 * rng.normal(size=emb.shape)
    flip /= np.linalg.norm(flip, axis=1, keepdims=True)
    tokens = rng.normal(size=(identities, text_tokens, text_dim)).astype(np.float16)
    tokens[:, -1] = 0  # padding, as a text encoder leaves it
    text_index = np.where(rng.random(n) < 0.75, ident, -1).astype(np.int32)
    real = rng.random(n) < 0.5
    return TrainingPack(
        photos=photos,
        sketches=sketches,
        real_sketch=real,
        styles=np.where(real, rng.integers(0, 3, n), -1).astype(np.int8),
        embeddings=emb.astype(np.float16),
        embeddings_flip=flip.astype(np.float16),
        text_index=text_index,
        text_tokens=tokens,
        sentences=np.array(
            [f"synthetic identity {i}, a {('man', 'woman')[i % 2]}" for i in range(identities)]
        ),
        identities=np.array([f"id{i}" for i in ident]),
        sources=np.where(np.arange(n) % 2 == 0, "fs2k", "celeba"),
        meta={"synthetic": True, "face_encoder": "test", "text_encoder": "test"},
    )
