"""Gates 1–4 of generator v2, each a function of a :class:`GateRunner` and dev data.

1. :func:`influence_gate` — change one condition (identity, text, reference image),
   keep the seed and the rest of the evidence: how far do the samples move, and x̂₀
   at large t?
2. :func:`text_only_gate` — faces from a sentence alone, graded by the attribute
   judge (:mod:`facefit.attribute_judge`) against the judge's accuracy on real photos.
3. :func:`identity_only_gate` — faces from an identity embedding alone: does dlib
   (which nothing trains or steers with) find that identity among the others?
4. :func:`reference_sketch_gate` — sketches in each FS2K style from a photo as the
   reference: do they keep the identity (augment's SFace filter; rank-1 among the photos)?

Each returns a JSON-ready dict with its numbers, their targets and ``pass``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.errors import InputError

if TYPE_CHECKING:
    from facefit.attribute_judge import AttributeJudge
    from facefit.generator.gates.devset import FaceSet, Fs2kDev
    from facefit.generator.gates.runner import GateRunner

log = logging.getLogger(__name__)

INFLUENCE_TARGET = 12.0
"""Mean absolute change per pixel (of 255) when one condition changes."""
X0_TIMESTEPS = (950, 800, 500)
TEXT_GENDER_SHARE = 0.90
"""Generated gender agreement must reach this share of the judge's real-photo accuracy."""
TEXT_HAIR_SHARE = 0.75
IDENTITY_RANK1_TARGET = 0.20
SKETCH_FILTER_TARGET = 0.60
SKETCH_RANK1_TARGET = 0.40
FILTER_COSINE = 0.25
"""``facefit augment``'s identity filter: SFace cosine of a sketch to its photo."""

__all__ = [
    "FILTER_COSINE",
    "INFLUENCE_TARGET",
    "X0_TIMESTEPS",
    "celeba_probes",
    "identity_only_gate",
    "identity_rank1",
    "influence_gate",
    "judge_real_accuracy",
    "partners",
    "rate",
    "real_identity_rank1",
    "reference_sketch_gate",
    "sketch_scores",
    "text_only_gate",
]


def rate(hits: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """A share with its count and 95% Wilson interval."""
    from facefit.evaluation.metrics import wilson_interval

    hits = np.asarray(hits, bool)
    n, k = int(hits.size), int(hits.sum())
    low, high = wilson_interval(k, n)
    value = k / n if n else None
    return {
        "value": None if value is None else round(value, 4),
        "hits": k,
        "n": n,
        "ci95": [round(low, 4), round(high, 4)] if n else None,
    }


def partners(persons: Sequence[str], sentences: Sequence[str], seed: int = 0) -> list[int]:
    """For each item, another item of a different person and, where one exists, a
    different sentence: what gate 1 swaps in. Deterministic for ``seed``."""
    n = len(persons)
    order = np.random.default_rng(seed).permutation(n).tolist()
    out = []
    for i in range(n):
        start = order.index(i)
        others = [order[(start + k) % n] for k in range(1, n)]
        other_person = [j for j in others if persons[j] != persons[i]]
        if not other_person:
            raise InputError("gate 1 needs items of at least two persons")
        differing = [j for j in other_person if sentences[j] != sentences[i]]
        out.append((differing or other_person)[0])
    return out


def _mean_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per item, the mean absolute difference (uint8 images: in units of 1/255)."""
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32))
    return diff.reshape(len(a), -1).mean(axis=1)


def influence_gate(runner: GateRunner, fs2k: Fs2kDev, items: Sequence[int]) -> dict[str, Any]:
    """Gate 1 on FS2K development pairs ``items``.

    Base evidence of pair ``i``: its sentence, its photo's identity embedding and its
    aligned photo as the reference image. Each swap replaces one of them by that of
    a partner pair (another person, another sentence: :func:`partners`) and samples
    again from the same seeds. Reported per condition: the mean absolute change of
    the samples and of x̂₀ at :data:`X0_TIMESTEPS` (the photo noised to t, conditional
    prediction), both in 1/255 of the pixel range.
    """
    items = list(items)
    size = runner.image_size
    photos = fs2k.photos.crop(size)[items]
    vectors = runner.identities(fs2k.photos.crop(runner.identity_encoder.input_size)[items])
    sentences = [fs2k.sentences[i] for i in items]
    persons = [fs2k.photos.persons[i] for i in items]
    partner = partners(persons, sentences)

    def evidence(text_of, identity_of, face_of):
        return [
            runner.conditions(
                text=sentences[text_of[k]],
                identity=vectors[identity_of[k]],
                face=photos[face_of[k]],
            )
            for k in range(len(items))
        ]

    own = list(range(len(items)))
    base = evidence(own, own, own)
    swaps = {"identity": evidence(own, partner, own), "text": evidence(partner, own, own)}
    result: dict[str, Any] = {}
    if runner.has_reference_image:
        swaps["reference"] = evidence(own, own, partner)
    else:
        result["reference"] = {"na": "the model takes no reference image (reference_image false)"}

    base_images = runner.sample(base)
    base_x0 = {t: runner.predict_x0(base, photos, t) for t in X0_TIMESTEPS}
    for name, swapped in swaps.items():
        change = _mean_abs(base_images, runner.sample(swapped))
        x0 = {
            str(t): round(
                float(np.abs(runner.predict_x0(swapped, photos, t) - base_x0[t]).mean() * 127.5), 3
            )
            for t in X0_TIMESTEPS
        }
        result[name] = {
            "samples": round(float(change.mean()), 3),
            "samples_sd": round(float(change.std()), 3),
            "x0": x0,
            "n": len(items),
            "target": INFLUENCE_TARGET,
            "pass": bool(change.mean() >= INFLUENCE_TARGET),
        }
    ordered = {k: result[k] for k in ("identity", "text", "reference")}
    passed = all(v.get("pass", False) for v in ordered.values())
    return {**ordered, "unit": "mean |change| per pixel, of 255", "pass": passed}


def judge_real_accuracy(
    judge: AttributeJudge, encoder: Any, fs2k: Fs2kDev, items: Sequence[int]
) -> dict[str, Any]:
    """The judge's accuracy on the real photos of pairs ``items``, per head."""
    items = list(items)
    predicted = judge.judge_faces(encoder, fs2k.photos.crop(judge.crop_size)[items])
    out = {}
    for head in judge.heads:
        hits = [
            predicted[head][k] == fs2k.labels[i][head]
            for k, i in enumerate(items)
            if head in fs2k.labels[i]
        ]
        out[head] = rate(hits)
    return out


def text_only_gate(
    runner: GateRunner,
    fs2k: Fs2kDev,
    items: Sequence[int],
    judge: AttributeJudge,
    encoder: Any,
    real: dict[str, Any],
) -> dict[str, Any]:
    """Gate 2: a face from each pair's sentence alone, graded by ``judge`` on ``encoder``.

    ``real`` is :func:`judge_real_accuracy` on the same pairs; agreement must reach
    :data:`TEXT_GENDER_SHARE` (gender) and :data:`TEXT_HAIR_SHARE` (hair colour) of it.
    """
    items = list(items)
    images = runner.sample([runner.conditions(text=fs2k.sentences[i]) for i in items])
    predicted = judge.judge_faces(encoder, images)
    out: dict[str, Any] = {}
    for head, share in (("gender", TEXT_GENDER_SHARE), ("hair_color", TEXT_HAIR_SHARE)):
        hits = [
            predicted[head][k] == fs2k.labels[i][head]
            for k, i in enumerate(items)
            if head in fs2k.labels[i]
        ]
        agreement = rate(hits)
        real_value = real[head]["value"]
        target = None if real_value is None else round(share * real_value, 4)
        ok = agreement["value"] is not None and target is not None
        out[head] = {
            "agreement": agreement,
            "judge_real_accuracy": real_value,
            "share_of_real": share,
            "target": target,
            "pass": bool(ok and agreement["value"] >= target),
        }
    out["pass"] = out["gender"]["pass"] and out["hair_color"]["pass"]
    return out


def celeba_probes(faces: FaceSet, per_identity: int, limit: int | None) -> list[int]:
    """Probe indices for gate 3: the first ``per_identity`` photos of each person (0: all),
    taken round-robin over persons so that a ``limit`` still spans many identities."""
    by_person: dict[str, list[int]] = {}
    for i, person in enumerate(faces.persons):
        by_person.setdefault(person, []).append(i)
    # a probe needs another photo of its person to be found
    lists = [
        v if per_identity <= 0 else v[:per_identity]
        for _, v in sorted(by_person.items())
        if len(v) > 1
    ]
    order = [v[k] for k in range(max(map(len, lists), default=0)) for v in lists if k < len(v)]
    return order if limit is None else order[:limit]


def identity_rank1(
    probes: np.ndarray,
    gallery: np.ndarray,
    persons: Sequence[str],
    truth: Sequence[str],
    exclude: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Per probe, whether its true person ranks first (cosine, best photo per person).

    ``exclude[k]`` is a gallery row probe ``k`` may not match (its own photo).
    Ties count against the probe.
    """
    scores = np.asarray(probes, np.float32) @ np.asarray(gallery, np.float32).T
    if exclude is not None:
        for k, row in enumerate(exclude):
            if row is not None:
                scores[k, row] = -np.inf
    names = sorted(set(persons))
    column = {p: j for j, p in enumerate(names)}
    best = np.full((len(scores), len(names)), -np.inf, np.float32)
    for g, person in enumerate(persons):
        j = column[person]
        best[:, j] = np.maximum(best[:, j], scores[:, g])
    hits = np.zeros(len(scores), bool)
    for k, person in enumerate(truth):
        if person not in column:
            continue
        own = best[k, column[person]]
        others = np.delete(best[k], column[person])
        hits[k] = bool(np.isfinite(own) and (others.size == 0 or own > others.max()))
    return hits


def _embed(encoder: Any, faces: np.ndarray) -> np.ndarray:
    from facefit.imaging.faces import resize_aligned

    size = encoder.input_size
    return encoder.embed(np.stack([resize_aligned(f, size) for f in faces]))


def identity_only_gate(
    runner: GateRunner,
    celeba: FaceSet,
    probes: Sequence[int],
    grader: Any,
    gallery: np.ndarray,
    real: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Gate 3: a face from each probe photo's identity embedding alone, found by ``grader``.

    ``gallery`` holds ``grader``'s vectors of every photo in ``celeba``; a generated
    face is a hit when its probe's person is first among the persons' *other* photos.
    ``real`` (optional) is the same rank-1 for the probe photos themselves at the
    generator's resolution, for scale.
    """
    probes = list(probes)
    vectors = runner.identities(celeba.crop(runner.identity_encoder.input_size)[probes])
    images = runner.sample([runner.conditions(identity=v) for v in vectors])
    truth = [celeba.persons[i] for i in probes]
    hits = identity_rank1(_embed(grader, images), gallery, celeba.persons, truth, probes)
    result = rate(hits)
    out = {
        "rank1": result,
        "identities": len(set(celeba.persons)),
        "chance": round(1 / max(1, len(set(celeba.persons))), 4),
        "target": IDENTITY_RANK1_TARGET,
        "pass": bool(result["value"] is not None and result["value"] >= IDENTITY_RANK1_TARGET),
    }
    if real is not None:
        out["real_photo_rank1"] = real
    return out


def real_identity_rank1(
    celeba: FaceSet, probes: Sequence[int], grader: Any, gallery: np.ndarray, size: int
) -> dict[str, Any]:
    """Rank-1 of the probe photos themselves, resampled to ``size`` first (gate 3's scale)."""
    probes = list(probes)
    vectors = _embed(grader, celeba.crop(size)[probes])
    truth = [celeba.persons[i] for i in probes]
    return rate(identity_rank1(vectors, gallery, celeba.persons, truth, probes))


def sketch_scores(
    sketches: np.ndarray,
    items: Sequence[int],
    encoder: Any,
    photo_vectors: np.ndarray,
    persons: Sequence[str],
) -> dict[str, Any]:
    """Sketches of pairs ``items`` against the photos: augment's filter and rank-1.

    A sketch (grey, aligned at any size) goes through augment's path
    (:func:`facefit.augment.worker.sketch_for_encoder`); ``photo_vectors`` are
    ``encoder``'s vectors of every development photo, ``persons`` their persons.
    """
    from facefit.augment.worker import sketch_for_encoder

    items = list(items)
    vectors = encoder.embed(sketch_for_encoder(np.asarray(sketches), encoder.input_size))
    cosines = np.sum(vectors * photo_vectors[items], axis=1)
    truth = [persons[i] for i in items]
    return {
        "filter_pass": rate(cosines >= FILTER_COSINE),
        "rank1": rate(identity_rank1(vectors, photo_vectors, persons, truth)),
        "mean_cosine": round(float(cosines.mean()), 4) if len(cosines) else None,
    }


def reference_sketch_gate(
    runner: GateRunner,
    fs2k: Fs2kDev,
    items: Sequence[int],
    encoder: Any,
    photo_vectors: np.ndarray,
) -> dict[str, Any]:
    """Gate 4: sketches in each FS2K style from each pair's photo as the reference
    (identity embedding and aligned image), scored by :func:`sketch_scores`."""
    from facefit.generator.conditions import SKETCH_STYLES, sketch_domain

    items = list(items)
    photos = fs2k.photos.crop(runner.image_size)[items]
    vectors = runner.identities(fs2k.photos.crop(runner.identity_encoder.input_size)[items])
    per_style, sketches = {}, []
    for style in range(SKETCH_STYLES):
        evidence = [
            runner.conditions(identity=v, face=p, domain=sketch_domain(style))
            for v, p in zip(vectors, photos)
        ]
        made = runner.sample(evidence)
        sketches.append(made)
        per_style[str(style)] = sketch_scores(
            made, items, encoder, photo_vectors, fs2k.photos.persons
        )
    every = sketch_scores(
        np.concatenate(sketches), items * SKETCH_STYLES, encoder, photo_vectors, fs2k.photos.persons
    )
    filter_ok = every["filter_pass"]["value"] is not None
    rank_ok = every["rank1"]["value"] is not None
    return {
        **every,
        "per_style": per_style,
        "reference_image_used": runner.has_reference_image,
        "targets": {"filter_pass": SKETCH_FILTER_TARGET, "rank1": SKETCH_RANK1_TARGET},
        "pass": bool(
            filter_ok
            and rank_ok
            and every["filter_pass"]["value"] >= SKETCH_FILTER_TARGET
            and every["rank1"]["value"] >= SKETCH_RANK1_TARGET
        ),
    }
