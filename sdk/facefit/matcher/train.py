"""Fine-tuning SFace into a sketch-to-mugshot matcher with AdaFace's adaptive margin.

FS2K has one photo and one artist's sketch per pair, and several pairs may show one
person (:mod:`facefit.datasets.persons`); each training *person* is one class whose *proxy* is the
mean SFace embedding of its photos (and their mirror images), so two pairs of one person
are never each other's negatives (``classes="pair"`` gives every pair its own class, as
before, for comparison). Sketches are classified against all proxies by AdaFace's head
(:func:`facefit_plugins.face_encoders.adaface.adaface_loss`, via the registry's ``adaface`` loss):
each is pulled to its photo's proxy and away from the others, with a margin AdaFace sets
from its feature norm (faint, low-quality drawings get a gentler one). The proxies stay
fixed by default — they are the gallery's own embeddings before training — and
``photo_samples`` also classifies the photos, to hold them at their proxies.

Only the tail of SFace trains (from :data:`~facefit.matcher.model.DEFAULT_SPLIT`:
``conv_14``, ``bn1`` and the embedding layer); the trunk's features are computed once
with ONNX Runtime (photos and sketches, each also mirrored) and cached. A slice of the
training persons (about ``val_pairs`` FS2K pairs — never the development split; no person
on both sides) picks the best epoch by person-level rank; epoch 0 is the unchanged SFace,
so a run that does not help keeps SFace's weights.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facefit.devices import resolve_device
from facefit.errors import InputError
from facefit.files import atomic_file
from facefit.matcher.data import AlignedPairs, Pair
from facefit.settings import at_least, check_fields, more_than, one_of

log = logging.getLogger(__name__)

__all__ = [
    "BALANCES",
    "CLASSES",
    "GROUPINGS",
    "PHOTOMETRIC",
    "FitResult",
    "TrainSettings",
    "balanced_rows",
    "class_labels",
    "composition",
    "fit",
    "group_rank1",
    "masked_negatives",
    "pair_groups",
    "photometric_jitter",
    "rank_metrics",
    "sketch_ranks",
    "split_validation",
]

CLASSES = ("person", "pair", "pair-masked")
"""What a training class is: a person (its pairs share it), a pair's own identity, or a
pair's own identity whose person's other pairs are never its negatives (masked)."""

BALANCES = ("none", "gender", "skin", "gender-skin", "style", "gender-style")
"""How an epoch draws its sketches: as the data has them, or an equal share per gender,
per apparent skin tone (light, medium, dark), per gender × skin tone cell, per FS2K
sketch style, or per gender × sketch style cell."""

PHOTOMETRIC = ("none", "photos", "sketches", "both")
"""Which training crops get a photometrically jittered copy (:func:`photometric_jitter`)."""

GROUPINGS = ("gender", "skin", "gender-skin", "style", "gender-style")
"""What :func:`pair_groups` can group pairs by."""

UNKNOWN_GROUP = "unknown"
"""The group of a pair whose data states no gender (synthetic pairs) or no skin tone."""


@dataclass
class TrainSettings:
    """Everything that decides a training run (recorded in the model's ``config.json``)."""

    epochs: int = 8
    lr: float = 1e-4
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    split: str = "conv_13_relu"
    """ONNX tensor where the trainable tail starts."""
    val_pairs: int = 100
    """About this many FS2K training pairs (whole persons) held out to choose the epoch
    (0: keep the last epoch)."""
    classes: str = "person"
    """``"person"``: pairs of one person share a class; ``"pair"``: every identity (FS2K
    pair) is its own class, as before persons were known (for comparison);
    ``"pair-masked"``: every pair keeps its own class and proxy, but the classes of its
    person's other pairs are left out of its softmax, so they are never its negatives."""
    weight_decay: float = 0.0
    anchor: float = 0.0
    """L2-SP weight: pulls the tail's weights towards SFace's (0: off)."""
    train_proxies: bool = False
    """Let the class proxies move (default: fixed at the photos' SFace embeddings)."""
    photo_samples: bool = False
    """Also classify the photos against their own proxies (default: sketches only, which
    matched better on the validation pairs without costing photo-to-photo matching)."""
    balance: str = "none"
    """``"gender"``: every epoch draws the same number of sketches from each gender
    (pairs without one form their own group), the smaller groups' sketches repeated
    and the larger groups' subsampled, epoch length unchanged; ``"skin"``: the same per
    apparent skin-tone group (:attr:`~facefit.matcher.data.Pair.skin_tone`);
    ``"gender-skin"``: the same per gender × skin-tone cell (with ``skin`` and
    ``gender-skin``, pairs whose group is unknown are drawn once each and the rest of
    the epoch is shared equally); ``"style"``: the same per FS2K sketch style
    (:attr:`~facefit.matcher.data.Pair.style`); ``"gender-style"``: per gender × style
    cell (with both, pairs without a style, e.g. synthetic ones, are drawn once each);
    ``"none"``: each sketch once per epoch."""
    style_weights: dict[str, float] = field(default_factory=dict)
    """With ``balance`` ``"style"`` or ``"gender-style"``: each style's share of the
    epoch relative to the others (a style not named weighs 1), e.g. ``{"0": 2.0}``
    gives style-0 sketches twice the share of each other style (under
    ``gender-style``, each of its gender cells twice the share of another cell).
    Empty: equal shares."""
    photometric: str = "none"
    """Photometric augmentation: ``"photos"``, ``"sketches"`` or ``"both"`` get
    two jittered copies of each training crop (:func:`photometric_jitter`; one of them
    mirrored, in the place of the mirror image), drawn once with ``seed`` and run
    through the frozen trunk once. A sample then takes a jittered copy half the time.
    With jittered photos, each class proxy is the mean over the plain *and* jittered
    photos, so no colour cast of one photo sets where its sketch is pulled. Validation
    and the gallery always see the crops as they are. ``"none"``: off (nothing extra is
    computed or drawn from the run's random streams, so the run is as before the option)."""
    m: float = 0.4
    h: float = 0.333
    s: float = 64.0
    t_alpha: float = 0.01
    threads: int = 0
    """Threads for feature extraction and torch (0: library default)."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`InputError` for values that cannot train (again after a change)."""
        check_fields(
            self,
            {
                "epochs": at_least(0),
                "lr": more_than(0),
                "batch_size": at_least(2),
                "val_pairs": at_least(0),
                "classes": one_of(CLASSES),
                "balance": one_of(BALANCES),
                "photometric": one_of(PHOTOMETRIC),
            },
            error=InputError,
            where="train-matcher: ",
        )
        if self.style_weights and self.balance not in ("style", "gender-style"):
            raise InputError(
                "train-matcher: style weights need balance style or gender-style, "
                f"not {self.balance!r}"
            )
        bad = {k: w for k, w in self.style_weights.items() if not w > 0}
        if bad:
            raise InputError(f"train-matcher: style weights must be more than 0, got {bad}")


@dataclass
class FitResult:
    """A trained tail and what happened while training it."""

    tail: Any
    """The :class:`~facefit.matcher.model.GraphTail` with the chosen epoch's weights."""
    best_epoch: int
    history: list[dict[str, float]]
    """Per epoch (0 = before training): train loss and validation metrics."""
    classes: int
    samples: int
    steps: int
    seconds: float
    feature_seconds: float
    dim: int = 0
    """Length of the embeddings."""
    train_pairs: int = 0
    val_pairs: int = 0
    norm_stats: dict[str, float] = field(default_factory=dict)
    persons: int = 0
    """Distinct persons among the training pairs (each pair's :attr:`~Pair.label`)."""
    composition: dict[str, dict[str, int]] = field(default_factory=dict)
    """Pairs per gender (:func:`composition`) of the ``train`` and ``val`` sides, and per
    skin tone (``train_skin_tone``, ``val_skin_tone``) where the pairs have one."""


def rank_metrics(
    sketches: np.ndarray, photos: np.ndarray, persons: Sequence[str] | None = None
) -> dict[str, float]:
    """Sketch ``i`` against photos (its own is photo ``i``): rank-1, rank-5, MRR.

    Embeddings are L2-normalized here. Ties count against the sketch, as in the eval
    harness (rank = 1 + photos scoring at least as high as the true one). With
    ``persons`` (the person of each pair), at person level, as the harness scores it:
    a hit on any photo of the sketch's person counts, and each person takes one rank.
    """
    ranks = sketch_ranks(sketches, photos, persons)
    return {
        "rank1": float((ranks == 1).mean()),
        "rank5": float((ranks <= 5).mean()),
        "mrr": float((1.0 / ranks).mean()),
    }


def sketch_ranks(
    sketches: np.ndarray, photos: np.ndarray, persons: Sequence[str] | None = None
) -> np.ndarray:
    """Rank of each sketch's own photo (or person, with ``persons``), as :func:`rank_metrics`."""
    from facefit.evaluation.metrics import person_codes, true_ranks
    from facefit.evaluation.metrics import person_scores as by_person

    s = sketches / np.maximum(np.linalg.norm(sketches, axis=1, keepdims=True), 1e-12)
    p = photos / np.maximum(np.linalg.norm(photos, axis=1, keepdims=True), 1e-12)
    scores, truth = s @ p.T, np.arange(len(s))
    if persons is not None:
        columns = [str(i) for i in range(len(p))]
        codes = person_codes(columns, dict(zip(columns, persons, strict=True)))
        scores, truth = by_person(scores, truth, codes)
    return true_ranks(scores, truth)


def pair_groups(pairs: Sequence[Pair], by: str = "gender") -> list[str]:
    """Each pair's group (:data:`UNKNOWN_GROUP` where the data states none).

    ``by``: ``"gender"``; ``"skin"`` (apparent skin tone); ``"gender-skin"``
    (``"female/medium"``: unknown when either is); ``"style"`` (FS2K's sketch style
    code, ``"0"``); ``"gender-style"`` (``"female/0"``).
    """
    if by == "gender":
        return [p.gender or UNKNOWN_GROUP for p in pairs]
    if by == "skin":
        return [p.skin_tone or UNKNOWN_GROUP for p in pairs]
    if by == "gender-skin":
        return [
            f"{p.gender}/{p.skin_tone}" if p.gender and p.skin_tone else UNKNOWN_GROUP
            for p in pairs
        ]
    if by == "style":
        return [p.style or UNKNOWN_GROUP for p in pairs]
    if by == "gender-style":
        return [f"{p.gender}/{p.style}" if p.gender and p.style else UNKNOWN_GROUP for p in pairs]
    raise InputError(f"train-matcher: groups are by one of {', '.join(GROUPINGS)}, not {by!r}")


def composition(pairs: Sequence[Pair], by: str = "gender") -> dict[str, int]:
    """Pairs per group (:func:`pair_groups`), e.g. ``{"female": 344, "male": 414}``."""
    counts: dict[str, int] = {}
    for group in pair_groups(pairs, by):
        counts[group] = counts.get(group, 0) + 1
    return dict(sorted(counts.items()))


def group_rank1(ranks: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    """Rank-1 per group, and ``gap``: the best group's minus the worst's (two or more groups)."""
    ranks, groups = np.asarray(ranks), np.asarray(groups)
    out = {str(g): float((ranks[groups == g] == 1).mean()) for g in sorted(set(groups.tolist()))}
    if len(out) >= 2:
        out["gap"] = max(out.values()) - min(out.values())
    return out


def photometric_jitter(
    crops: np.ndarray,
    rng: np.random.Generator,
    *,
    colour: bool = True,
    brightness: float = 0.25,
    contrast: float = 0.25,
    gain: float = 0.15,
    grey: float = 0.2,
) -> np.ndarray:
    """A photometrically jittered copy of ``(N, H, W, 3)`` uint8 RGB crops.

    Per crop: with ``colour``, saturation scaled by U(0.5, 1.3) (the crop turned fully
    grey with probability ``grey``) and the three channels scaled by gains from
    U(1 ± ``gain``), normalized to mean 1 (a colour cast, not a brightness change); then
    contrast about the crop's mean by U(1 ± ``contrast``) and brightness by
    U(1 ± ``brightness``). ``colour=False`` (sketches) changes contrast and brightness only.
    """
    x = np.asarray(crops, np.float32)
    n = len(x)
    if colour:
        luma = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        saturation = rng.uniform(0.5, 1.3, n).astype(np.float32)
        saturation[rng.random(n) < grey] = 0.0
        x = luma + (x - luma) * saturation[:, None, None, None]
        gains = rng.uniform(1 - gain, 1 + gain, (n, 3)).astype(np.float32)
        x = x * (gains / gains.mean(axis=1, keepdims=True))[:, None, None, :]
    scale = rng.uniform(1 - contrast, 1 + contrast, n).astype(np.float32)[:, None, None, None]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * scale + mean
    x = x * rng.uniform(1 - brightness, 1 + brightness, n).astype(np.float32)[:, None, None, None]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _compositions(train: Sequence[Pair], val: Sequence[Pair]) -> dict[str, dict[str, int]]:
    """Pairs per gender (``train``, ``val``) and, where known, per skin tone
    (``train_skin_tone``, ``val_skin_tone``) and per sketch style (``train_style``,
    ``val_style``)."""
    out = {"train": composition(train), "val": composition(val)}
    if any(p.skin_tone for p in [*train, *val]):
        out.update(
            train_skin_tone=composition(train, "skin"), val_skin_tone=composition(val, "skin")
        )
    if any(p.style for p in [*train, *val]):
        out.update(train_style=composition(train, "style"), val_style=composition(val, "style"))
    return out


def masked_negatives(
    pairs: Sequence[Pair], identities: Sequence[str], labels: np.ndarray
) -> np.ndarray:
    """``(C, C)`` bool: class ``j`` is another identity of class ``i``'s person.

    For ``classes="pair-masked"``: a sketch of class ``i`` is scored against every proxy
    except these (their logits are set to -inf), so a person's other pairs are never
    pushed away, while each pair keeps its own proxy.
    """
    person = [""] * len(identities)
    for pair, label in zip(pairs, labels):
        person[int(label)] = pair.label
    codes = np.unique(np.asarray(person), return_inverse=True)[1]
    same = codes[:, None] == codes[None, :]
    np.fill_diagonal(same, False)
    return same


def _masked_loss(loss_fn: Any, features: Any, labels: Any, masked: Any) -> Any:
    """AdaFace's loss with the masked classes (``masked[label]``) left out of each softmax."""
    import torch

    norms = torch.norm(features, 2, 1, True)
    embeddings = features / norms.clamp(min=1e-12)
    logits = loss_fn.head(embeddings, norms, labels)
    logits = logits.masked_fill(masked[labels], float("-inf"))
    return torch.nn.functional.cross_entropy(logits, labels)


def balanced_rows(
    groups: Sequence[str],
    rng: np.random.Generator,
    natural: Collection[str] = (),
    weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """One epoch's rows (``len(groups)`` of them), an equal share from every group.

    A group with fewer rows than its share repeats whole shuffled passes over them and
    fills the rest without repeats; a larger group is subsampled without repeats. The
    groups named in ``natural`` (e.g. pairs whose group is unknown) are not balanced:
    each of their rows comes once, and the other groups share the rest. With
    ``weights`` (group → relative share, 1 for a group not named), the shares are in
    those proportions instead of equal. The rows come back shuffled.
    """
    groups = np.asarray(groups)
    kept = np.flatnonzero(np.isin(groups, list(natural))) if len(natural) else np.zeros(0, int)
    names = sorted(set(groups.tolist()) - set(natural))
    if not names:
        return rng.permutation(kept).astype(np.int64)
    total = len(groups) - len(kept)
    if weights:
        shares = _weighted_shares(total, [float(weights.get(n, 1.0)) for n in names])
    else:
        shares = np.full(len(names), total // len(names))
        shares[: total % len(names)] += 1
    picked = [kept]
    for name, share in zip(names, shares):
        members = np.flatnonzero(groups == name)
        passes, rest = divmod(int(share), len(members))
        picked += [rng.permutation(members) for _ in range(passes)]
        picked.append(rng.permutation(members)[:rest])
    rows = np.concatenate(picked)
    return rows[rng.permutation(len(rows))]


def _weighted_shares(total: int, weights: Sequence[float]) -> np.ndarray:
    """``total`` split in proportion to ``weights`` (whole numbers summing to ``total``;
    the rounding remainder goes to the largest fractions, the first group on a tie)."""
    exact = total * np.asarray(weights, np.float64) / float(np.sum(weights))
    shares = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - shares), kind="stable")
    shares[order[: total - int(shares.sum())]] += 1
    return shares


def class_labels(pairs: Sequence[Pair], classes: str = "person") -> tuple[list[str], np.ndarray]:
    """The training classes (sorted names) and each pair's class index.

    ``classes="person"``: a pair's class is its :attr:`~facefit.matcher.data.Pair.label`
    (its person where known), so pairs of one person share a class and its proxy, and
    are never each other's negatives; ``"pair"``: its identity.
    """
    if classes not in CLASSES:
        raise InputError(f"train-matcher: classes must be one of {', '.join(CLASSES)}")
    names = [p.label if classes == "person" else p.identity for p in pairs]
    # pair-masked: classes are identities; masked_negatives() says which to leave out
    ordered = sorted(set(names))
    index = {name: c for c, name in enumerate(ordered)}
    return ordered, np.array([index[n] for n in names], np.int64)


def split_validation(data: AlignedPairs, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``: about ``count`` FS2K pairs for validation, by whole persons.

    Only FS2K pairs (real artists' sketches, the target domain) are validated on.
    Persons (each pair's :attr:`~facefit.matcher.data.Pair.label`) are drawn with ``seed``
    until ``count`` pairs are held out; a person is never on both sides, so the pairs of
    other sources showing a held-out person are left out of training as well.
    """
    if count == 0:
        return np.arange(len(data)), np.zeros(0, np.int64)
    sizes: dict[str, int] = {}
    for pair in data.pairs:
        if pair.source == "fs2k":
            sizes[pair.label] = sizes.get(pair.label, 0) + 1
    available = sum(sizes.values())
    if count > available // 2:
        raise InputError(
            f"train-matcher: {count} validation pairs asked, but only {available} FS2K "
            f"training pairs; use --val-pairs {available // 4} or fewer"
        )
    candidates = sorted(sizes)
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    held = 0
    for i in rng.permutation(len(candidates)):
        if held >= count:
            break
        chosen.add(candidates[i])
        held += sizes[candidates[i]]
    val = [i for i, p in enumerate(data.pairs) if p.label in chosen and p.source == "fs2k"]
    train = [i for i, p in enumerate(data.pairs) if p.label not in chosen]
    return np.array(train, np.int64), np.array(val, np.int64)


def _digest(*parts: bytes | np.ndarray) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.tobytes() if isinstance(part, np.ndarray) else part)
    return digest.hexdigest()[:24]


def trunk_features(
    prefix: Any,
    crops: np.ndarray,
    *,
    flips: bool,
    cache_dir: str | Path | None = None,
    threads: int = 0,
    progress: bool = False,
    desc: str = "features",
) -> np.ndarray:
    """Trunk features of ``crops`` (float16); with ``flips``, ``(N, 2, ...)``: as is, mirrored.

    Cached in ``cache_dir`` under a hash of the trunk model and the crops.
    """
    from tqdm import tqdm

    from facefit.matcher.model import run_prefix

    cache = None
    if cache_dir is not None:
        key = _digest(prefix.SerializeToString(), np.array([flips]), crops)
        cache = Path(cache_dir) / f"features-{key}.npy"
        if cache.is_file():
            return np.load(cache)
    views = [crops, crops[:, :, ::-1]] if flips else [crops]
    with tqdm(total=len(crops) * len(views), desc=desc, unit="crop", disable=not progress) as bar:
        outs = [
            run_prefix(prefix, np.ascontiguousarray(v), threads=threads, progress=bar.update)
            for v in views
        ]
    features = np.stack(outs, axis=1) if flips else outs[0]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(cache) as handle:  # a file object: np.save adds no suffix
            np.save(handle, features)
    return features


def _embed(tail: Any, features: np.ndarray, device: Any, batch: int = 128) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(features), batch):
            x = torch.from_numpy(np.asarray(features[start : start + batch], np.float32))
            out.append(tail(x.to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def fit(
    base: Any,
    data: AlignedPairs,
    settings: TrainSettings,
    *,
    registry: Any = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    photo_check: AlignedPairs | None = None,
) -> FitResult:
    """Fine-tune the tail of ``base`` (an SFace-like ONNX model) on ``data``.

    ``photo_check`` (optional): photo–photo pairs of identities not trained on; each
    epoch also reports how well the second photo finds the first (``val_photo_*``), to
    watch the gallery side of the shared network. It does not choose the epoch.

    Returns the tail at the epoch with the best validation mean reciprocal rank (it
    moves with rank-1 but is less noisy on a hundred pairs), epoch 0 (SFace unchanged)
    included; with ``val_pairs`` = 0, the last epoch.
    """
    import torch

    settings.check()
    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    threads = torch.get_num_threads()
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    try:
        return _fit(base, data, settings, registry, cache_dir, progress, on_epoch, photo_check)
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Split:
    """Which pairs train and which choose the epoch, and the classes of the training pairs."""

    train_idx: np.ndarray
    val_idx: np.ndarray
    train_pairs: list[Pair]
    identities: list[str]
    labels: np.ndarray
    """Class of each training pair (index into ``identities``)."""
    val_persons: list[str]
    train_groups: list[str]
    """Each training pair's group under the settings' ``balance`` (gender when none)."""
    val_groups: list[str]
    """Each validation pair's gender group."""
    val_skin_groups: list[str]
    """Each validation pair's skin-tone group."""
    val_style_groups: list[str] = field(default_factory=list)
    """Each validation pair's sketch style (FS2K's code)."""

    @classmethod
    def of(cls, data: AlignedPairs, settings: TrainSettings) -> _Split:
        train_idx, val_idx = split_validation(data, settings.val_pairs, settings.seed)
        train_pairs = [data.pairs[i] for i in train_idx]
        val_pairs = [data.pairs[i] for i in val_idx]
        identities, labels = class_labels(train_pairs, settings.classes)
        if len(identities) < 2:
            raise InputError(f"train-matcher: {len(identities)} training classes; need at least 2")
        return cls(
            train_idx,
            val_idx,
            train_pairs,
            identities,
            labels,
            [p.label for p in val_pairs],
            pair_groups(train_pairs, "gender" if settings.balance == "none" else settings.balance),
            pair_groups(val_pairs),
            pair_groups(val_pairs, "skin"),
            pair_groups(val_pairs, "style"),
        )


@dataclass
class _Features:
    """The frozen trunk's output for every crop (computed once, cached on disk)."""

    photos: np.ndarray
    """``(n, 2, …)``: each pair's photo, plain and flipped."""
    sketches: np.ndarray
    photo_check: tuple[np.ndarray, np.ndarray] | None
    """Features of the photo–photo check pairs (first photos, second photos), or None."""
    seconds: float
    photos_jittered: np.ndarray | None = None
    """With ``photometric``: ``(len(train_idx), 2, …)``, two jittered copies of each
    *training* pair's photo (the second mirrored), in ``split.train_idx`` order."""
    sketches_jittered: np.ndarray | None = None


def _trunk_features(
    base: Any, data: AlignedPairs, photo_check: AlignedPairs | None, settings: TrainSettings,
    cache_dir: str | Path | None, progress: bool,
) -> _Features:  # fmt: skip
    from facefit.matcher.model import graph_prefix

    started = time.perf_counter()
    prefix = graph_prefix(base, settings.split)
    common = {"cache_dir": cache_dir, "threads": settings.threads, "progress": progress}
    photos = trunk_features(prefix, data.photos, flips=True, desc="photo features", **common)
    sketches = trunk_features(prefix, data.sketches, flips=True, desc="sketch features", **common)
    check = None
    if photo_check is not None and len(photo_check) >= 2:
        check = (
            trunk_features(prefix, photo_check.photos, flips=False, desc="check", **common),
            trunk_features(prefix, photo_check.sketches, flips=False, desc="check", **common),
        )
    return _Features(photos, sketches, check, time.perf_counter() - started)


def _jittered_features(
    base: Any, data: AlignedPairs, split: _Split, features: _Features, settings: TrainSettings,
    cache_dir: str | Path | None, progress: bool,
) -> None:  # fmt: skip
    """Add the trunk features of jittered training crops to ``features`` (``photometric``)."""
    from facefit.matcher.model import graph_prefix

    if settings.photometric == "none":
        return
    started = time.perf_counter()
    prefix = graph_prefix(base, settings.split)
    common = {"cache_dir": cache_dir, "threads": settings.threads, "progress": progress}
    rng = np.random.default_rng([settings.seed, 21])
    for domain in ("photos", "sketches"):
        if settings.photometric not in (domain, "both"):
            continue
        crops = getattr(data, domain)[split.train_idx]
        colour = domain == "photos"
        first = photometric_jitter(crops, rng, colour=colour)
        second = photometric_jitter(crops, rng, colour=colour)[:, :, ::-1]
        views = [
            trunk_features(prefix, np.ascontiguousarray(v), flips=False, desc=f"jittered {domain}",
                           **common)
            for v in (first, second)
        ]  # fmt: skip
        setattr(features, f"{domain}_jittered", np.stack(views, axis=1))
    features.seconds += time.perf_counter() - started


def _photo_proxies(
    tail: Any, features: _Features, split: _Split, device: Any
) -> tuple[np.ndarray, dict[str, float]]:
    """Each class's starting proxy (the mean of its photos' SFace embeddings) and the
    embedding norms of this data, which start the loss's running statistics."""
    tail.eval()
    train = split.train_idx
    flat = features.photos[train].reshape(-1, *features.photos.shape[2:])
    photo_raw = _embed(tail, flat, device).reshape(len(train), 2, -1)
    unit = photo_raw / np.linalg.norm(photo_raw, axis=-1, keepdims=True)
    if features.photos_jittered is not None:  # the mean over plain and jittered photos
        jittered = features.photos_jittered.reshape(-1, *features.photos_jittered.shape[2:])
        raw = _embed(tail, jittered, device).reshape(len(train), 2, -1)
        unit = np.concatenate([unit, raw / np.linalg.norm(raw, axis=-1, keepdims=True)], axis=1)
    proxies = np.zeros((len(split.identities), photo_raw.shape[-1]), np.float32)
    np.add.at(proxies, split.labels, unit.mean(axis=1))
    proxies /= np.linalg.norm(proxies, axis=1, keepdims=True)
    photo_norms = np.linalg.norm(photo_raw[:, 0], axis=1)
    sketch_norms = np.linalg.norm(_embed(tail, features.sketches[train, 0], device), axis=1)
    norms = np.concatenate([photo_norms, sketch_norms])
    norm_stats = {
        "mean": float(norms.mean()),
        "std": float(norms.std()),
        "photo_mean": float(photo_norms.mean()),
        "sketch_mean": float(sketch_norms.mean()),
    }
    return proxies, norm_stats


def _adaface_loss(
    registry: Any, settings: TrainSettings, proxies: np.ndarray, norm_stats: dict[str, float],
    device: Any,
) -> Any:  # fmt: skip
    """The AdaFace loss with its class proxies set to ``proxies`` (fixed unless
    ``train_proxies``) and its norm statistics started at this data's."""
    import torch

    loss_fn = registry.create_loss(
        "adaface",
        num_classes=len(proxies),
        embedding_size=proxies.shape[1],
        m=settings.m,
        h=settings.h,
        s=settings.s,
        t_alpha=settings.t_alpha,
    ).to(device)
    head = loss_fn.head
    with torch.no_grad():
        head.kernel.copy_(torch.from_numpy(proxies.T.copy()))
        # start the running norm statistics at this data's, not at the head's defaults (20 ± 100)
        head.batch_mean.fill_(norm_stats["mean"])
        head.batch_std.fill_(max(norm_stats["std"], 1e-3))
    head.kernel.requires_grad_(settings.train_proxies)
    return loss_fn


class _Validation:
    """Scores the tail after an epoch: sketch → photo ranks of the held-out pairs (by
    gender too) and, when given, the photo–photo check."""

    def __init__(self, features: _Features, split: _Split, device: Any) -> None:
        self.photos = features.photos[split.val_idx, 0]
        self.sketches = features.sketches[split.val_idx, 0]
        self.check = features.photo_check
        self.split, self.device = split, device

    def __call__(self, tail: Any, epoch: int, loss: float) -> dict[str, float]:
        row: dict[str, float] = {"epoch": epoch, "loss": loss}
        tail.eval()
        if len(self.split.val_idx):
            sketches = _embed(tail, self.sketches, self.device)
            photos = _embed(tail, self.photos, self.device)
            ranks = sketch_ranks(sketches, photos, self.split.val_persons)
            row.update(val_rank1=float((ranks == 1).mean()), val_rank5=float((ranks <= 5).mean()))
            row["val_mrr"] = float((1.0 / ranks).mean())
            groups = group_rank1(ranks, self.split.val_groups)
            row.update({f"val_rank1_{k}": v for k, v in groups.items()})
            if set(self.split.val_skin_groups) != {UNKNOWN_GROUP}:
                skin = group_rank1(ranks, self.split.val_skin_groups)
                row.update({f"val_skin_rank1_{k}": v for k, v in skin.items()})
            if set(self.split.val_style_groups) - {UNKNOWN_GROUP}:
                style = group_rank1(ranks, self.split.val_style_groups)
                row.update({f"val_style_rank1_{k}": v for k, v in style.items()})
        if self.check is not None:
            first, second = self.check
            metrics = rank_metrics(
                _embed(tail, second, self.device), _embed(tail, first, self.device)
            )
            row.update({f"val_photo_{k}": v for k, v in metrics.items()})
        return row


class _Epochs:
    """The optimisation: samples (sketches, and photos with ``photo_samples``), their
    order each epoch, and one pass over them."""

    def __init__(
        self, tail: Any, loss_fn: Any, features: _Features, split: _Split,
        settings: TrainSettings, device: Any,
    ) -> None:  # fmt: skip
        import torch

        self.tail, self.loss_fn, self.split, self.settings = tail, loss_fn, split, settings
        self.device = device
        self.photos = features.photos[split.train_idx]
        self.sketches = features.sketches[split.train_idx]
        self.jittered = {0: features.photos_jittered, 1: features.sketches_jittered}
        # its own stream, so that photometric="none" draws exactly what it always drew
        self.jitter_rng = np.random.default_rng([settings.seed, 22])
        self.initial = {k: v.detach().clone() for k, v in tail.params.items()}
        self.masked = None  # pair-masked: a person's other pairs are never a pair's negatives
        if settings.classes == "pair-masked":
            masked = masked_negatives(split.train_pairs, split.identities, split.labels)
            self.masked = torch.from_numpy(masked).to(device)
        # samples: (pair row in train_idx, domain 0 photo / 1 sketch), domain-major
        self.rows = np.arange(len(split.train_idx))
        self.domains = [1] + ([0] if settings.photo_samples else [])
        self.samples = np.array([(r, d) for d in self.domains for r in self.rows], np.int64)
        self.steps_per_epoch = math.ceil(len(self.samples) / settings.batch_size)
        self.total_steps = max(1, self.steps_per_epoch * settings.epochs)
        params = tail.trainable() + ([loss_fn.head.kernel] if settings.train_proxies else [])
        self.optimizer = torch.optim.AdamW(
            params, lr=settings.lr, weight_decay=settings.weight_decay
        )
        total = self.total_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
        self.rng = np.random.default_rng(settings.seed)
        self.steps = 0

    def order(self) -> np.ndarray:
        """This epoch's samples, shuffled (and balanced by group with ``balance``)."""
        rng = self.rng
        if self.settings.balance == "none":
            return self.samples[rng.permutation(len(self.samples))]
        # gender keeps pairs without one as a group of their own (as it always did); the
        # skin and style balances draw pairs of unknown skin tone or style once each
        natural = () if self.settings.balance == "gender" else (UNKNOWN_GROUP,)
        weights = self.group_weights()
        # the same draw for every domain: rows of samples are domain-major
        picks = np.concatenate(
            [
                d * len(self.rows) + balanced_rows(self.split.train_groups, rng, natural, weights)
                for d in range(len(self.domains))
            ]
        )
        return self.samples[picks[rng.permutation(len(picks))]]

    def group_weights(self) -> dict[str, float] | None:
        """Each balanced group's relative share from ``style_weights`` (None: equal)."""
        if not self.settings.style_weights:
            return None
        styles = {str(k): float(w) for k, w in self.settings.style_weights.items()}
        return {
            g: styles.get(g.rsplit("/", 1)[-1], 1.0)
            for g in set(self.split.train_groups) - {UNKNOWN_GROUP}
        }

    def run_epoch(self, epoch: int, bar: Any) -> float:
        """One pass over this epoch's order; returns the mean loss."""
        self.tail.train()
        self.loss_fn.head.train()
        order = self.order()
        flips = self.rng.integers(0, 2, len(order))
        size = self.settings.batch_size
        losses = []
        for b in range(self.steps_per_epoch):
            losses.append(
                self._step(order[b * size : (b + 1) * size], flips[b * size : (b + 1) * size])
            )
            self.steps += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses):.3f}")
        return float(np.mean(losses))

    def _step(self, chunk: np.ndarray, flip: np.ndarray) -> float:
        import torch

        from facefit.interfaces import LossInputs

        feats = np.where(
            (chunk[:, 1] == 0)[:, None, None, None],
            self.photos[chunk[:, 0], flip],
            self.sketches[chunk[:, 0], flip],
        )
        for domain, jittered in self.jittered.items():
            if jittered is None:
                continue
            use = (chunk[:, 1] == domain) & (self.jitter_rng.random(len(chunk)) < 0.5)
            feats[use] = jittered[chunk[use, 0], flip[use]]
        x = torch.from_numpy(feats.astype(np.float32)).to(self.device)
        y = torch.from_numpy(self.split.labels[chunk[:, 0]]).to(self.device)
        if self.masked is None:
            loss = self.loss_fn(LossInputs(prediction=self.tail(x), target=y))
        else:
            loss = _masked_loss(self.loss_fn, self.tail(x), y, self.masked)
        if self.settings.anchor > 0:  # L2-SP: pull the weights towards SFace's
            drift = sum(((p - self.initial[k]) ** 2).sum() for k, p in self.tail.params.items())
            loss = loss + self.settings.anchor * drift
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())


def _fit(
    base: Any,
    data: AlignedPairs,
    settings: TrainSettings,
    registry: Any,
    cache_dir: str | Path | None,
    progress: bool,
    on_epoch: Callable[[dict[str, float]], None] | None,
    photo_check: AlignedPairs | None,
) -> FitResult:
    """:func:`fit` with its arguments checked: split, features, proxies and loss, then
    epochs, keeping the tail of the best validated epoch (epoch 0 included)."""
    import torch
    from tqdm import tqdm

    from facefit.matcher.model import GraphTail

    start_time = time.perf_counter()
    torch.manual_seed(settings.seed)
    device = torch.device(resolve_device(settings.device, "train-matcher: device"))
    split = _Split.of(data, settings)
    features = _trunk_features(base, data, photo_check, settings, cache_dir, progress)
    _jittered_features(base, data, split, features, settings, cache_dir, progress)
    tail = GraphTail(base, settings.split).to(device)
    proxies, norm_stats = _photo_proxies(tail, features, split, device)
    loss_fn = _adaface_loss(registry, settings, proxies, norm_stats, device)
    epochs = _Epochs(tail, loss_fn, features, split, settings, device)
    validate = _Validation(features, split, device)

    history = [validate(tail, 0, float("nan"))]
    best_state, best_epoch = copy.deepcopy(tail.state_dict()), 0
    best_key = history[0].get("val_mrr", -1.0)
    if on_epoch is not None:
        on_epoch(history[0])
    bar = tqdm(total=epochs.total_steps, desc="training", unit="step", disable=not progress)
    for epoch in range(1, settings.epochs + 1):
        row = validate(tail, epoch, epochs.run_epoch(epoch, bar))
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        key = row.get("val_mrr", float(epoch))
        if not len(split.val_idx) or key > best_key:
            best_key, best_epoch = key, epoch
            best_state = copy.deepcopy(tail.state_dict())
    bar.close()
    tail.load_state_dict(best_state)
    tail.eval()
    return FitResult(
        tail=tail,
        best_epoch=best_epoch,
        history=history,
        classes=len(split.identities),
        samples=len(epochs.samples),
        steps=epochs.steps,
        seconds=time.perf_counter() - start_time,
        feature_seconds=features.seconds,
        dim=int(proxies.shape[1]),
        train_pairs=len(split.train_idx),
        val_pairs=len(split.val_idx),
        norm_stats=norm_stats,
        persons=len({p.label for p in split.train_pairs}),
        composition=_compositions(split.train_pairs, [data.pairs[i] for i in split.val_idx]),
    )


def settings_dict(settings: TrainSettings) -> dict[str, Any]:
    """The settings as JSON-ready values."""
    return json.loads(json.dumps(asdict(settings)))


def train_matcher(
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    synthetic: Sequence[str | Path] = (),
    settings: TrainSettings | None = None,
    base_weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    registry: Any = None,
    detector: str = "yunet",
    progress: bool = False,
    command: str | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> Path:
    """Train a sketch matcher and write it to ``out`` (see :mod:`facefit.matcher.files`).

    ``data_dir`` is the shared data folder (its FS2K training split is used; the
    development split never is; persons come from :func:`facefit.datasets.persons.load_persons`,
    which refuses a folder the grouping was not made from); ``synthetic`` lists FS2K-format folders of synthetic
    sketches (their development-split entries are dropped). At least one source is needed.
    ``base_weights`` is the SFace ONNX file (default: resolved like the ``sface`` plugin's).
    """
    from facefit.datasets.persons import load_persons
    from facefit.imaging.faces import FaceEmbedder
    from facefit.matcher.card import model_card
    from facefit.matcher.data import default_cache_dir
    from facefit.matcher.files import export_onnx, save_matcher
    from facefit.matcher.model import load_base
    from facefit.weights import resolve

    settings = settings or TrainSettings()
    settings.check()
    if data_dir is None and not synthetic:
        raise InputError("train-matcher: give --data (FS2K training pairs) and/or --synthetic DIR")
    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    base_path = resolve("sface", base_weights)
    base = load_base(base_path)
    # only the detector runs here (the sface encoder loads its weights on first use)
    embedder = FaceEmbedder.from_registry(registry, detector=detector)
    persons = load_persons(data_dir) if data_dir is not None else None
    align = {"embedder": embedder, "cache_dir": cache_dir, "progress": progress}
    data, sources = _training_pairs(data_dir, synthetic, persons, **align)
    photo_check = _photo_check(data_dir, persons, data, **align)
    _check_training_data(data, settings)

    result = fit(
        base,
        data,
        settings,
        registry=registry,
        cache_dir=cache_dir,
        progress=progress,
        on_epoch=on_epoch,
        photo_check=photo_check,
    )
    model = export_onnx(base, result.tail.onnx_weights())
    config = _matcher_config(
        result,
        settings,
        base=base,
        base_path=base_path,
        model=model,
        data_notes={
            "sources": sources,
            "persons_from": (
                "facefit.datasets.persons (the committed grouping)" if persons is not None else None
            ),
            "detector": detector,
            "photo_check": (
                f"{len(photo_check)} CelebA training identities, first photo vs second "
                "(reported as val_photo_*, not used to choose the epoch)"
                if photo_check is not None
                else None
            ),
        },
        command=command,
    )
    save_matcher(out, model, config, card=model_card(config), parity_faces=_parity_faces(data))
    return Path(out)


def _training_pairs(
    data_dir: str | Path | None, synthetic: Sequence[str | Path], persons: Any, *,
    embedder: Any, cache_dir: Path, progress: bool,
) -> tuple[AlignedPairs, list[dict[str, Any]]]:  # fmt: skip
    """FS2K's training pairs and each synthetic folder's, aligned, with a row per source."""
    from facefit.matcher.data import (
        align_pairs,
        dev_exclusions,
        fs2k_training_pairs,
        source_persons,
        synthetic_pairs,
    )

    aligned_sets, sources = [], []
    if data_dir is not None:
        pairs = fs2k_training_pairs(data_dir, persons)
        aligned = align_pairs(
            pairs, embedder, cache_dir=cache_dir, progress=progress, desc="aligning fs2k"
        )
        aligned_sets.append(aligned)
        sources.append(_source_row("fs2k", "fs2k", str(data_dir), pairs, aligned, []))
    exclusions = dev_exclusions(data_dir)
    traced = source_persons(data_dir, persons) if persons is not None else None
    names: set[str] = set()
    for folder in synthetic:
        name = Path(folder).resolve().name
        while name in names or name == "fs2k":
            name += "+"
        names.add(name)
        pairs, dropped = synthetic_pairs(folder, exclusions, source=name, persons=traced)
        aligned = align_pairs(
            pairs, embedder, cache_dir=cache_dir, progress=progress, desc=f"aligning {name}"
        )
        aligned_sets.append(aligned)
        sources.append(_source_row(name, "synthetic", str(folder), pairs, aligned, dropped))
    return AlignedPairs.concat(aligned_sets, embedder.encoder.input_size), sources


def _photo_check(
    data_dir: str | Path | None, persons: Any, data: AlignedPairs, *,
    embedder: Any, cache_dir: Path, progress: bool,
) -> AlignedPairs | None:  # fmt: skip
    """Photo–photo pairs of CelebA training identities not trained on (None without them)."""
    from facefit.matcher.data import align_pairs, celeba_photo_pairs, trained_celeba_identities

    if data_dir is None or not (Path(data_dir) / "celeba-subset" / "identities.csv").is_file():
        return None
    trained = {p.identity.removeprefix("synthetic/") for p in data.pairs}
    trained |= trained_celeba_identities(data_dir, persons, {p.label for p in data.pairs})
    return align_pairs(
        celeba_photo_pairs(data_dir, exclude=trained),
        embedder,
        cache_dir=cache_dir,
        progress=progress,
        desc="aligning photo check",
        sketch_fallback=False,
    )


def _check_training_data(data: AlignedPairs, settings: TrainSettings) -> None:
    if not len(data):
        raise InputError("train-matcher: no usable pair (no photo had a face)")
    if settings.val_pairs and not any(p.source == "fs2k" for p in data.pairs):
        raise InputError(
            "train-matcher: validation pairs come from FS2K; without --data use --val-pairs 0"
        )


def _matcher_config(
    result: FitResult, settings: TrainSettings, *, base: Any, base_path: Path, model: Any,
    data_notes: dict[str, Any], command: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The matcher's ``config.json``: what it is built on, its loss, data, training and
    validation history (read back by :mod:`facefit.matcher.files` and the card)."""
    from facefit.files import sha256_file
    from facefit.matcher.files import MATCHER_NAME
    from facefit.matcher.model import model_digest

    history = result.history
    return {
        "name": MATCHER_NAME,
        "dim": result.dim,
        "input_size": int(_input_size(base)),
        "input": "aligned RGB crops, NCHW float32 in [0, 255]",
        "base": {
            "encoder": "sface",
            "version": "sface-2021dec",
            "file": base_path.name,
            "sha256": sha256_file(base_path),
        },
        "split": settings.split,
        "trained": result.tail.trainable_names(),
        "loss": {
            "name": "adaface",
            "m": settings.m,
            "h": settings.h,
            "s": settings.s,
            "t_alpha": settings.t_alpha,
            "proxies": "mean SFace embedding of each identity's photos (and mirror images)"
            + (", trained" if settings.train_proxies else ", fixed"),
            "samples": "sketches and photos" if settings.photo_samples else "sketches",
            "initial_norms": result.norm_stats,
        },
        "data": {
            "sources": data_notes["sources"],
            "train_pairs": result.train_pairs,
            "val_pairs": result.val_pairs,
            "classes": result.classes,
            "classes_are": settings.classes,
            "persons": result.persons,
            "composition": result.composition,
            "balance": settings.balance,
            "persons_from": data_notes["persons_from"],
            "detector": data_notes["detector"],
            "alignment": "photos: detected; sketches: detected, framed-drawing fallback",
            "photo_check": data_notes["photo_check"],
        },
        "settings": settings_dict(settings),
        "training": {
            "epochs": settings.epochs,
            "best_epoch": result.best_epoch,
            "steps": result.steps,
            "samples_per_epoch": result.samples,
            "seconds": round(result.seconds, 1),
            "feature_seconds": round(result.feature_seconds, 1),
            "device": settings.device,
            "command": command,
            "date": time.strftime("%Y-%m-%d"),
        },
        "metrics": {
            "val_baseline": history[0],
            "val_best": history[result.best_epoch],
            "history": history,
        },
        "onnx_sha256": model_digest(model),
    }


def _parity_faces(data: AlignedPairs) -> np.ndarray:
    """A few sketches, photos and noise images on which the saved ONNX and torch models
    are compared (they must agree)."""
    rng = np.random.default_rng(0)
    faces = [data.sketches[: min(4, len(data))], data.photos[: min(4, len(data))]]
    faces.append(rng.integers(0, 256, (2, *data.photos.shape[1:]), dtype=np.uint8))
    return np.concatenate(faces)


def _input_size(base: Any) -> int:
    dims = base.graph.input[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value) if len(dims) == 4 and dims[-1].dim_value else 112


def _source_row(name, kind, path, pairs, aligned, dropped) -> dict[str, Any]:
    alignments: dict[str, int] = {}
    for alignment in aligned.sketch_alignment:
        alignments[alignment] = alignments.get(alignment, 0) + 1
    return {
        "name": name,
        "kind": kind,
        "path": path,
        "pairs": len(aligned),
        "listed": len(pairs) + len(dropped),
        "dropped_dev": len(dropped),
        "skipped": aligned.skipped,
        "sketch_alignment": alignments,
    }
