"""The attribute judge: gender and hair colour read off a face, learnt from real photos only.

Generator gate 2 (:mod:`facefit.generator.gates`) asks whether faces generated from a
sentence alone show the gender and the hair colour the sentence states. The judge
that answers must never have seen a generated face, or the development split: it is
a class-balanced multinomial logistic regression on ``dlib`` descriptors of real
training-split photos (FS2K's ``gender``/``hair_color`` labels and CelebA's
``Male``/``*_Hair`` attributes), trained by ``scripts/train_attribute_judge.py``
and shipped as ``attribute_judge_dlib.json`` beside this module.

Every face, real or generated, is graded at the same resolution: the aligned crop is
resampled to the judge's ``crop_size`` (the generator's, 64 px) and then to the
encoder's input, so a real photo is not judged sharper than a generated face.

    >>> judge = AttributeJudge.load()
    >>> judge.judge_faces(encoder, faces)       # {"gender": [...], "hair_color": [...]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError

__all__ = [
    "HEADS",
    "JUDGE_PATH",
    "AttributeJudge",
    "JudgeHead",
    "accuracy",
    "fit_softmax",
    "judge_crops",
    "judge_labels",
    "train_judge",
]

JUDGE_PATH = Path(__file__).resolve().parent / "attribute_judge_dlib.json"
"""The shipped judge (dlib descriptors)."""

HEADS: dict[str, tuple[str, ...]] = {
    "gender": ("female", "male"),
    "hair_color": ("black", "brown", "golden", "red"),
}
"""What the judge reads and its classes: the hair colours FS2K's sentences state
(CelebA's ``Blond_Hair`` counts as golden; grey, bald and unknown are left out)."""

_HAIR_ALIASES = {"blond": "golden"}


def judge_labels(attrs: Mapping[str, Any]) -> dict[str, str]:
    """The judge's labels for structured attributes (:mod:`facefit.datasets.attributes`).

    A head whose attribute is unknown, or outside its classes, is left out.
    """
    labels: dict[str, str] = {}
    gender = attrs.get("gender")
    if gender in HEADS["gender"]:
        labels["gender"] = gender
    hair = attrs.get("hair_color")
    hair = _HAIR_ALIASES.get(hair, hair)
    if not attrs.get("bald") and hair in HEADS["hair_color"]:
        labels["hair_color"] = hair
    return labels


@dataclass(frozen=True)
class JudgeHead:
    """One attribute: a softmax over ``classes`` (``weights`` ``(C, D)``, ``bias`` ``(C,)``)."""

    classes: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    l2: float = 0.0
    cv_accuracy: float | None = None
    """Cross-validated accuracy on the training photos (grouped by person)."""

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = features @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, features: np.ndarray) -> list[str]:
        return [self.classes[k] for k in self.probabilities(features).argmax(axis=1)]


@dataclass(frozen=True)
class AttributeJudge:
    """Attribute heads on standardised face-encoder descriptors (see the module docs)."""

    encoder: str
    dim: int
    crop_size: int
    mean: np.ndarray
    scale: np.ndarray
    heads: dict[str, JudgeHead]
    meta: dict[str, Any] = field(default_factory=dict)

    def features(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InputError(
                f"attribute judge: expected {self.dim}-d {self.encoder} descriptors, "
                f"got shape {vectors.shape}"
            )
        return (vectors - self.mean) / self.scale

    def predict(self, vectors: np.ndarray) -> dict[str, list[str]]:
        """Each head's class for each descriptor."""
        x = self.features(vectors)
        return {name: head.predict(x) for name, head in self.heads.items()}

    def crops(self, faces: np.ndarray, input_size: int) -> np.ndarray:
        """Aligned crops → the judge's resolution → the encoder's input size."""
        return judge_crops(faces, self.crop_size, input_size)

    def embed(self, encoder: Any, faces: np.ndarray) -> np.ndarray:
        """Descriptors of aligned ``(N, S, S, 3)`` uint8 crops, at the judge's resolution."""
        if encoder.name != self.encoder:
            raise InputError(
                f"attribute judge was trained on {self.encoder!r} descriptors; "
                f"got the {encoder.name!r} encoder"
            )
        return encoder.embed_aligned(self.crops(np.asarray(faces), encoder.input_size))

    def judge_faces(self, encoder: Any, faces: np.ndarray) -> dict[str, list[str]]:
        """Each head's class for aligned face crops (real or generated)."""
        return self.predict(self.embed(encoder, faces))

    # -- files ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        def rounded(a: np.ndarray) -> list:
            return np.round(np.asarray(a, np.float64), 6).tolist()

        return {
            "encoder": self.encoder,
            "dim": self.dim,
            "crop_size": self.crop_size,
            "mean": rounded(self.mean),
            "scale": rounded(self.scale),
            "heads": {
                name: {
                    "classes": list(h.classes),
                    "weights": rounded(h.weights),
                    "bias": rounded(h.bias),
                    "l2": h.l2,
                    "cv_accuracy": h.cv_accuracy,
                }
                for name, h in self.heads.items()
            },
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> Path:
        """Write the judge as JSON, atomically."""
        from facefit.files import atomic_write_bytes

        path = Path(path)
        text = json.dumps(self.to_json(), indent=1) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: str | Path = JUDGE_PATH) -> AttributeJudge:
        """Read a judge written by :meth:`save` (default: the shipped one)."""
        path = Path(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            heads = {
                name: JudgeHead(
                    tuple(h["classes"]),
                    np.asarray(h["weights"], np.float32),
                    np.asarray(h["bias"], np.float32),
                    float(h.get("l2", 0.0)),
                    h.get("cv_accuracy"),
                )
                for name, h in record["heads"].items()
            }
            return cls(
                record["encoder"],
                int(record["dim"]),
                int(record["crop_size"]),
                np.asarray(record["mean"], np.float32),
                np.asarray(record["scale"], np.float32),
                heads,
                record.get("meta", {}),
            )
        except FileNotFoundError:
            raise InputError(
                f"{path}: no attribute judge; train one with scripts/train_attribute_judge.py"
            ) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: not an attribute judge file ({exc})") from None


def judge_crops(faces: np.ndarray, crop_size: int, input_size: int) -> np.ndarray:
    """Aligned crops resampled to ``crop_size`` (the resolution every face is judged at),
    then to the encoder's ``input_size``."""
    from facefit.imaging.faces import resize_aligned

    out = [resize_aligned(resize_aligned(f, crop_size), input_size) for f in faces]
    return np.stack(out) if out else np.zeros((0, input_size, input_size, 3), np.uint8)


def accuracy(predicted: Sequence[str], truth: Sequence[str | None]) -> float | None:
    """Share of items whose prediction equals the truth, over items with a truth."""
    pairs = [(p, t) for p, t in zip(predicted, truth) if t is not None]
    if not pairs:
        return None
    return sum(p == t for p, t in pairs) / len(pairs)


def fit_softmax(
    x: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float, steps: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression with an L2 penalty (LBFGS in torch).

    ``x`` ``(N, D)`` features, ``y`` ``(N,)`` class indices → ``(weights (C, D), bias (C,))``.
    Each class weighs as much as any other in the loss, so a rare hair colour is not
    simply never predicted.
    """
    import torch

    y = np.asarray(y, np.int64)
    counts = np.bincount(y, minlength=n_classes)
    if (counts == 0).any():
        missing = [k for k in range(n_classes) if counts[k] == 0]
        raise InputError(f"fit_softmax: no examples of class(es) {missing}")
    x_t = torch.from_numpy(np.asarray(x, np.float32))
    y_t = torch.from_numpy(y)
    class_weight = torch.from_numpy((len(y) / (n_classes * counts)).astype(np.float32))
    w = torch.zeros(n_classes, x_t.shape[1], requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = x_t @ w.T + b
        loss = torch.nn.functional.cross_entropy(logits, y_t, weight=class_weight)
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(np.float32), b.detach().numpy().astype(np.float32)


def _group_folds(groups: Sequence[str], folds: int) -> np.ndarray:
    """A fold number per item; all items of a group (a person) share one fold."""
    import hashlib

    def fold(g: str) -> int:
        return int(hashlib.sha256(g.encode()).hexdigest()[:8], 16) % folds

    return np.array([fold(g) for g in groups])


def _cv_accuracy(x, y, n_classes, groups, l2, folds) -> float:
    fold_of = _group_folds(groups, folds)
    hits = total = 0
    for k in range(folds):
        test = fold_of == k
        train = ~test
        if not test.any() or len(np.unique(y[train])) < n_classes:
            continue
        w, b = fit_softmax(x[train], y[train], n_classes, l2=l2)
        hits += int(((x[test] @ w.T + b).argmax(1) == y[test]).sum())
        total += int(test.sum())
    return hits / total if total else float("nan")


def train_judge(
    vectors: np.ndarray,
    labels: Sequence[Mapping[str, str]],
    groups: Sequence[str],
    *,
    encoder: str,
    crop_size: int,
    l2_grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
    folds: int = 5,
    meta: Mapping[str, Any] | None = None,
) -> AttributeJudge:
    """Fit every head of :data:`HEADS` on descriptors of real photos.

    ``labels[i]`` holds the known classes of item ``i`` (see :func:`judge_labels`);
    ``groups[i]`` is its person, so the L2 weight is chosen by cross-validation over
    persons (``folds`` folds of the training data; no held-out data is used).
    """
    vectors = np.asarray(vectors, np.float32)
    if len(vectors) != len(labels) or len(vectors) != len(groups):
        raise InputError(
            f"train_judge: {len(vectors)} vectors, {len(labels)} labels, {len(groups)} groups"
        )
    mean = vectors.mean(axis=0)
    scale = vectors.std(axis=0) + 1e-6
    x_all = (vectors - mean) / scale
    heads = {}
    for name, classes in HEADS.items():
        rows = [i for i, item in enumerate(labels) if item.get(name) in classes]
        x = x_all[rows]
        y = np.array([classes.index(labels[i][name]) for i in rows])
        g = [groups[i] for i in rows]
        scores = {l2: _cv_accuracy(x, y, len(classes), g, l2, folds) for l2 in l2_grid}
        best = max(l2_grid, key=lambda l2: (np.nan_to_num(scores[l2], nan=-1.0), l2))
        w, b = fit_softmax(x, y, len(classes), l2=best)
        cv = scores[best]
        heads[name] = JudgeHead(
            classes, w, b, float(best), None if np.isnan(cv) else round(float(cv), 4)
        )
    return AttributeJudge(
        encoder, vectors.shape[1], int(crop_size), mean, scale, heads, dict(meta or {})
    )
