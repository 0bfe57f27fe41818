"""Does a face agree with a description? Attribute probes on identity embeddings.

The loop scores each candidate against the evidence itself; for text that means
"is this a smiling woman with black hair?". facefit answers it without an
image–text model, in two honest steps:

1. :func:`parse_description` reads the attributes a description states, in the
   vocabulary of :func:`facefit.datasets.attributes.describe` plus common synonyms
   ("a smiling woman with blond hair" → gender female, smiling, hair golden).
   Words it does not know are ignored, never guessed.
2. :class:`AttributeProbes` are logistic-regression probes on the identity
   encoder's embeddings (SFace), trained on the FS2K training split and checked on
   the development split (``scripts/train_attribute_probes.py``). Only probes whose
   held-out balanced accuracy clears :data:`MIN_BALANCED_ACCURACY` are shipped, so
   an attribute the embedding does not carry is not scored at all.

A candidate's text agreement is the mean probability, over the stated attributes
that have a probe, that the candidate shows them: a number in [0, 1].
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facefit.errors import InputError
from facefit.files import atomic_write_text

__all__ = [
    "ATTRIBUTE_FEATURES",
    "MIN_BALANCED_ACCURACY",
    "AttributeProbes",
    "attribute_features",
    "parse_description",
    "probe_labels",
]

MIN_BALANCED_ACCURACY = 0.7
"""A probe is used only when its development-split balanced accuracy is at least this."""

PROBES_DIR = Path(__file__).resolve().parent
"""Shipped probes live beside this module as ``attribute_probes_<encoder>.json``."""

HAIR_COLORS = ("black", "brown", "golden", "red")
"""Hair colours FS2K annotates (CelebA's "blond" is read as golden)."""

_WORD = r"(?<![a-z]){}(?![a-z])"
_FEMALE = ("woman", "women", "female", "girl", "lady", "she", "her")
_MALE = ("man", "men", "male", "boy", "guy", "he", "his", "him")
_COLOR_WORDS = {
    "black": "black",
    "dark": "black",
    "brown": "brown",
    "brunette": "brown",
    "blond": "golden",
    "blonde": "golden",
    "golden": "golden",
    "fair": "golden",
    "red": "red",
    "ginger": "red",
    "auburn": "red",
}


def _has(text: str, *words: str) -> bool:
    return any(re.search(_WORD.format(re.escape(w)), text) for w in words)


def parse_description(text: str) -> dict[str, Any]:
    """The attributes ``text`` states, as a dict with some of these keys:

    ``gender`` ("male"/"female"), ``smiling`` (bool), ``bald`` (bool),
    ``hair_color`` (one of :data:`HAIR_COLORS`), ``earrings`` (bool).

    A key is present only when the text says so; contradictory words (both "man"
    and "woman") leave the key out.
    """
    if not isinstance(text, str):
        raise InputError(f"description must be a string, got {type(text).__name__}")
    t = " " + text.lower().replace("-", " ") + " "
    attrs: dict[str, Any] = {}
    female, male = _has(t, *_FEMALE), _has(t, *_MALE)
    if female != male:
        attrs["gender"] = "female" if female else "male"

    if _has(t, "not smiling", "unsmiling", "no smile", "serious", "stern", "frowning"):
        attrs["smiling"] = False
    elif _has(t, "smiling", "smile", "smiles", "grinning", "laughing"):
        attrs["smiling"] = True

    if _has(t, "bald", "no hair", "shaved head", "shaven head"):
        attrs["bald"] = True
    colours = set()
    for match in re.finditer(r"(?:[a-z]+ ){1,3}(?:hair|haired)\b", t):  # up to 3 words before
        for word in match.group(0).split()[:-1]:
            if word in _COLOR_WORDS:
                colours.add(_COLOR_WORDS[word])
    for word in ("blond", "blonde", "brunette", "redhead"):
        if _has(t, word):
            colours.add("red" if word == "redhead" else _COLOR_WORDS[word])
    if len(colours) > 1 and "black" in colours and not _has(t, "black"):
        colours.discard("black")  # "dark brown hair" is brown
    if len(colours) == 1 and not attrs.get("bald"):
        attrs["hair_color"] = colours.pop()
        attrs["bald"] = False

    if _has(t, "no earrings", "without earrings", "not wearing earrings"):
        attrs["earrings"] = False
    elif _has(t, "earring", "earrings"):
        attrs["earrings"] = True
    return attrs


def probe_labels(attrs: Mapping[str, Any]) -> dict[str, int]:
    """Binary probe targets (1/0) from structured attributes (:mod:`facefit.datasets.attributes`
    keys or :func:`parse_description` keys); unknown attributes are left out."""
    labels: dict[str, int] = {}
    if attrs.get("gender") in ("male", "female"):
        labels["female"] = int(attrs["gender"] == "female")
    if isinstance(attrs.get("smiling"), bool):
        labels["smiling"] = int(attrs["smiling"])
    if isinstance(attrs.get("bald"), bool):
        labels["bald"] = int(attrs["bald"])
    colour = {"blond": "golden"}.get(attrs.get("hair_color"), attrs.get("hair_color"))
    if colour in HAIR_COLORS:
        for c in HAIR_COLORS:
            labels[f"hair_{c}"] = int(colour == c)
    earrings = attrs.get("earrings")
    if earrings is None and "wearing" in attrs:
        earrings = "earrings" in attrs["wearing"]
    if isinstance(earrings, bool):
        labels["earrings"] = int(earrings)
    return labels


_STATED_BINARY = ("female", "smiling", "bald", "earrings")

ATTRIBUTE_FEATURES = (
    *(f"{name}{side}" for name in _STATED_BINARY for side in ("", "_not")),
    *(f"hair_{c}" for c in HAIR_COLORS),
)
"""The names of :func:`attribute_features`' entries, in order."""


def attribute_features(attrs: Mapping[str, Any]) -> np.ndarray:
    """What a description states, as a fixed vector for the generator (float32, one
    entry per :data:`ATTRIBUTE_FEATURES` name).

    Each yes/no attribute has two entries, "stated yes" and "stated no", so that a
    description that says nothing about it (both 0) differs from one that denies it;
    the hair colour is one-hot over :data:`HAIR_COLORS`. Takes :func:`parse_description`
    output (or any attributes :func:`probe_labels` reads).
    """
    labels = probe_labels(attrs)
    out = np.zeros(len(ATTRIBUTE_FEATURES), np.float32)
    for name in _STATED_BINARY:
        if name in labels:
            out[ATTRIBUTE_FEATURES.index(name if labels[name] else f"{name}_not")] = 1.0
    for c in HAIR_COLORS:
        if labels.get(f"hair_{c}") == 1:
            out[ATTRIBUTE_FEATURES.index(f"hair_{c}")] = 1.0
    return out


@dataclass(frozen=True)
class Probe:
    """One logistic-regression probe: P(attribute) = sigmoid(w · x + b)."""

    weights: np.ndarray
    bias: float
    balanced_accuracy: float
    """On the development split (held out from training)."""


class AttributeProbes:
    """Attribute probes for one identity encoder (see the module docstring)."""

    def __init__(self, encoder: str, dim: int, probes: Mapping[str, Probe], meta: dict) -> None:
        self.encoder = encoder
        self.dim = int(dim)
        self.probes = dict(probes)
        self.meta = dict(meta)

    # -- files -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> AttributeProbes:
        """Read probes written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            probes = {
                name: Probe(np.asarray(p["weights"], np.float32), float(p["bias"]), float(p["bac"]))
                for name, p in data["probes"].items()
            }
            dim = int(data["dim"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not an attribute-probe file ({exc})") from None
        bad = [n for n, p in probes.items() if p.weights.shape != (dim,)]
        if bad:
            raise InputError(f"{path}: probe(s) {', '.join(bad)} do not have {dim} weights")
        return cls(str(data["encoder"]), dim, probes, data.get("meta", {}))

    def save(self, path: str | Path) -> Path:
        """Write the probes as JSON (atomically)."""
        path = Path(path)
        record = {
            "encoder": self.encoder,
            "dim": self.dim,
            "meta": self.meta,
            "probes": {
                name: {
                    "weights": [round(float(v), 6) for v in p.weights],
                    "bias": round(p.bias, 6),
                    "bac": round(p.balanced_accuracy, 4),
                }
                for name, p in sorted(self.probes.items())
            },
        }
        return atomic_write_text(path, json.dumps(record, indent=1) + "\n")

    @classmethod
    def for_encoder(cls, encoder: str) -> AttributeProbes | None:
        """The shipped probes for ``encoder`` (a face-encoder plugin name), or None."""
        path = PROBES_DIR / f"attribute_probes_{encoder}.json"
        return cls.load(path) if path.is_file() else None

    # -- use -------------------------------------------------------------------------------

    def usable(self) -> dict[str, Probe]:
        """The probes accurate enough to score with (:data:`MIN_BALANCED_ACCURACY`)."""
        return {
            n: p for n, p in self.probes.items() if p.balanced_accuracy >= MIN_BALANCED_ACCURACY
        }

    def predict(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        """P(attribute) per probe for embeddings ``(N, dim)``."""
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InputError(
                f"attribute probes for {self.encoder!r} take (N, {self.dim}) embeddings, "
                f"got {vectors.shape}"
            )
        return {
            name: 1.0 / (1.0 + np.exp(-(vectors @ p.weights + p.bias)))
            for name, p in self.probes.items()
        }

    def scorable(self, attrs: Mapping[str, Any]) -> dict[str, int]:
        """The stated attributes (as probe targets) that a usable probe can check."""
        usable = self.usable()
        labels = probe_labels(attrs)
        # one colour is stated: only its own probe speaks for it
        colour = [n for n, v in labels.items() if n.startswith("hair_") and v == 1]
        labels = {n: v for n, v in labels.items() if not n.startswith("hair_") or n in colour}
        return {n: v for n, v in labels.items() if n in usable}

    def agreement(self, vectors: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray | None:
        """Mean probability per face that it shows the stated attributes, or None when
        no stated attribute can be checked."""
        labels = self.scorable(attrs)
        if not labels:
            return None
        probs = self.predict(vectors)
        per = [probs[n] if v == 1 else 1.0 - probs[n] for n, v in labels.items()]
        return np.mean(per, axis=0)


def fit_probe(
    x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, steps: int = 200
) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression (LBFGS in torch): ``(weights, bias)``."""
    import torch

    x_t = torch.from_numpy(np.asarray(x, np.float32))
    y_t = torch.from_numpy(np.asarray(y, np.float32))
    positives = float(y_t.sum())
    if positives in (0.0, float(len(y_t))):
        raise InputError("fit_probe: labels need both classes")
    weight = torch.where(
        y_t > 0, len(y_t) / (2 * positives), len(y_t) / (2 * (len(y_t) - positives))
    )
    w = torch.zeros(x_t.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = x_t @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y_t, weight=weight)
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(np.float32), float(b.detach())


def balanced_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean of the true-positive and true-negative rates at threshold 0.5."""
    predicted = np.asarray(probabilities) >= 0.5
    labels = np.asarray(labels).astype(bool)
    rates = [
        float((predicted[labels == c] == c).mean()) for c in (True, False) if (labels == c).any()
    ]
    return float(np.mean(rates)) if rates else float("nan")
