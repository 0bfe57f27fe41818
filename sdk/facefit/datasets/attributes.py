"""Dataset attributes turned into fine-grained descriptions of a face.

Training pairs each face with a sentence, the way a witness would describe it
("a smiling young woman with wavy golden hair and bangs, wearing earrings"). Both
datasets are first mapped to one set of structured attributes (a plain dict, see
:data:`KEYS`), then :func:`describe` writes the sentence. Everything is
deterministic: the same attributes always give the same words in the same order.

    >>> attrs = celeba_attributes(row)          # a row of identities.csv
    >>> describe(attrs)
    'a smiling young woman with wavy blond hair and bangs, wearing earrings and lipstick'

FS2K codes, checked against the photos (the FS2K release notes say the same; the
data README's ``frontal_face (1 yes)`` is reversed): ``hair`` 0 has hair, 1 none;
``hair_color`` 0 brown, 1 black, 2 red, 3 none, 4 golden; ``gender`` 0 male,
1 female; ``earring`` 0 **with** earrings, 1 without; ``smile`` 0 **smiling**,
1 not; ``frontal_face`` 0 **frontal** (within 30°), 1 turned. ``skin_color`` is the
``(x, y)`` pixel where skin was sampled, so the skin tone needs the photo;
``lip_color`` and ``eye_color`` are mean RGB colours of those regions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from facefit.errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "CELEBA_ATTRIBUTES",
    "KEYS",
    "SKIN_TONE_BINS",
    "celeba_attributes",
    "celeba_sentence",
    "describe",
    "eye_color_name",
    "fs2k_attributes",
    "fs2k_sentence",
    "lip_color_name",
    "skin_tone_name",
]

KEYS: dict[str, str] = {
    "gender": '"male" or "female"',
    "age": '"young" or "older"',
    "smiling": "bool",
    "mouth_open": "bool",
    "bald": "bool",
    "hair_color": '"black", "brown", "blond", "golden", "red" or "grey"',
    "hair_texture": '"straight" or "wavy"',
    "bangs": "bool",
    "receding_hairline": "bool",
    "facial_hair": 'list of "a goatee", "a mustache", "a beard", "stubble", "sideburns"',
    "eyebrows": 'list of "arched", "bushy"',
    "eyes": 'list of "narrow", "bags"',
    "eye_color": '"dark", "brown" or "light"',
    "nose": 'list of "big", "pointy"',
    "lips": 'list of "big"',
    "lip_color": '"dark", "red", "pink" or "pale"',
    "face": 'list of "an oval face", "a chubby face", "a double chin", "high cheekbones", '
    '"rosy cheeks"',
    "skin_tone": '"very fair", "fair", "medium", "tanned", "brown", "dark" or "pale"',
    "wearing": 'list of "glasses", "earrings", "a hat", "a necklace", "a necktie", '
    '"lipstick", "heavy makeup"',
    "pose": '"frontal" or "turned"',
}
"""The structured attributes, all optional: a key that is absent is unknown."""

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
"""CelebA's 40 binary attributes, in the dataset's column order."""

_FS2K_HAIR_COLORS = {0: "brown", 1: "black", 2: "red", 4: "golden"}


def _lab(rgb: Sequence[float]) -> tuple[float, float, float]:
    """CIE L*a*b* (L 0–100) of one sRGB colour given as 0–255 values."""
    import cv2

    pixel = np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0
    lab = cv2.cvtColor(pixel, cv2.COLOR_RGB2LAB)[0, 0]
    return float(lab[0]), float(lab[1]), float(lab[2])


def skin_tone_name(rgb: Sequence[float]) -> str:
    """A word for a skin colour, from its individual typology angle (ITA).

    ITA = atan((L* − 50) / b*) with the customary bands (Chardon et al. 1991):
    > 55° very fair, > 41° fair, > 28° medium, > 10° tanned, > −30° brown, else dark.
    """
    lightness, _, b = _lab(rgb)
    ita = float(np.degrees(np.arctan2(lightness - 50.0, b)))
    for bound, word in (
        (55, "very fair"),
        (41, "fair"),
        (28, "medium"),
        (10, "tanned"),
        (-30, "brown"),
    ):
        if ita > bound:
            return word
    return "dark"


SKIN_TONE_BINS = {
    "very fair": "light",
    "fair": "light",
    "medium": "medium",
    "tanned": "medium",
    "brown": "dark",
    "dark": "dark",
}
"""The six words of :func:`skin_tone_name` merged into three bins (light, medium, dark),
so that a 200-probe split keeps enough probes per bin for a rank-1 interval that means
something: what ``facefit eval`` reports by and what ``train-matcher --balance skin``
balances over."""


def lip_color_name(rgb: Sequence[float]) -> str:
    """``"dark"``, ``"red"``, ``"pink"`` or ``"pale"`` for a mean lip colour.

    Bands from L*a*b* set at about the FS2K quartiles (L* < 36 dark, a* ≥ 30 red,
    a* < 17 pale).
    """
    lightness, a, _ = _lab(rgb)
    if lightness < 36:
        return "dark"
    if a >= 30:
        return "red"
    if a < 17:
        return "pale"
    return "pink"


def eye_color_name(rgb: Sequence[float]) -> str:
    """``"dark"``, ``"brown"`` or ``"light"`` for the mean colour of an eye region.

    The region mean mixes iris, sclera and lid, so only lightness is trusted
    (L* < 26 dark, > 48 light: about FS2K's quartile and 90th percentile).
    """
    lightness, _, _ = _lab(rgb)
    if lightness < 26:
        return "dark"
    if lightness > 48:
        return "light"
    return "brown"


def _code(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(
            f"FS2K attribute {key!r}: expected an integer code, got {value!r}"
        ) from None


def _colour(record: Mapping[str, Any], key: str) -> list[float] | None:
    value = record.get(key)
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64).ravel()
    if array.size != 3 or not np.isfinite(array).all():
        raise InputError(f"FS2K attribute {key!r}: expected a mean RGB colour, got {value!r}")
    return array.tolist()


def fs2k_attributes(record: Mapping[str, Any], photo: np.ndarray | None = None) -> dict[str, Any]:
    """Structured attributes of one FS2K annotation (an item of ``annotations.json``).

    ``photo`` (the pair's RGB photo, as loaded) is needed for the skin tone: FS2K
    gives the position of a skin sample, not its colour. Unknown or missing codes
    leave their key out.
    """
    attrs: dict[str, Any] = {}
    gender = _code(record, "gender")
    if gender in (0, 1):
        attrs["gender"] = "female" if gender == 1 else "male"
    smile = _code(record, "smile")
    if smile in (0, 1):
        attrs["smiling"] = smile == 0
    hair, color = _code(record, "hair"), _code(record, "hair_color")
    if hair == 1 or color == 3:
        attrs["bald"] = True
    elif hair == 0:
        attrs["bald"] = False
        if color in _FS2K_HAIR_COLORS:
            attrs["hair_color"] = _FS2K_HAIR_COLORS[color]
    if _code(record, "earring") == 0:
        attrs["wearing"] = ["earrings"]
    frontal = _code(record, "frontal_face")
    if frontal in (0, 1):
        attrs["pose"] = "frontal" if frontal == 0 else "turned"
    lips, eyes = _colour(record, "lip_color"), _colour(record, "eye_color")
    if lips is not None:
        attrs["lip_color"] = lip_color_name(lips)
    if eyes is not None:
        attrs["eye_color"] = eye_color_name(eyes)
    skin = record.get("skin_color")
    if photo is not None and skin is not None:
        sample = _sample_skin(photo, skin, record.get("id", "?"))
        if sample is not None:
            attrs["skin_tone"] = skin_tone_name(sample)
    return attrs


def _sample_skin(photo: np.ndarray, point: Sequence[float], what: str) -> np.ndarray | None:
    """Mean colour around the annotated skin point; None when the point is off the photo.

    FS2K has such annotations (photo3_0116's point lies far outside its photo): the
    skin tone is then unknown, like any other unusable code.
    """
    image = np.asarray(photo)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"FS2K {what}: the photo must be RGB (H, W, 3), got {image.shape}")
    x, y = (round(float(v)) for v in point)
    h, w = image.shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        log.warning("FS2K %s: skin sample (%d, %d) lies outside the %d×%d photo", what, x, y, w, h)
        return None
    patch = image[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].reshape(-1, 3)
    return patch.astype(np.float64).mean(0)


def celeba_attributes(row: Mapping[str, Any]) -> dict[str, Any]:
    """Structured attributes of a CelebA row: the 40 attributes as 1/−1 (or bools).

    Raises :class:`InputError` when the row has no attributes (``has_attrs`` 0).
    ``Attractive`` and ``Blurry`` describe the photo, not the person, and are left out.
    """
    if str(row.get("has_attrs", "1")).strip() in ("0", "False", "false", ""):
        raise InputError(f"CelebA {row.get('image', 'row')}: no attributes (has_attrs is 0)")
    on: dict[str, bool] = {}
    for name in CELEBA_ATTRIBUTES:
        value = row.get(name)
        if value is None or str(value).strip() == "":
            raise InputError(f"CelebA {row.get('image', 'row')}: attribute {name} is missing")
        text = str(value).strip()
        if text not in ("1", "-1", "True", "False", "0"):
            raise InputError(f"CelebA attribute {name}: expected 1 or -1, got {value!r}")
        on[name] = text in ("1", "True")

    attrs: dict[str, Any] = {
        "gender": "male" if on["Male"] else "female",
        "age": "young" if on["Young"] else "older",
        "smiling": on["Smiling"],
        "mouth_open": on["Mouth_Slightly_Open"],
        "bald": on["Bald"],
    }
    if not on["Bald"]:
        for name, color in (
            ("Gray_Hair", "grey"),
            ("Blond_Hair", "blond"),
            ("Black_Hair", "black"),
            ("Brown_Hair", "brown"),
        ):
            if on[name]:
                attrs["hair_color"] = color
                break
        if on["Wavy_Hair"]:
            attrs["hair_texture"] = "wavy"
        elif on["Straight_Hair"]:
            attrs["hair_texture"] = "straight"
        attrs["bangs"] = on["Bangs"]
        attrs["receding_hairline"] = on["Receding_Hairline"]
    facial_hair = [
        word for name, word in (("Goatee", "a goatee"), ("Mustache", "a mustache")) if on[name]
    ]
    if not on["No_Beard"] and not facial_hair:
        facial_hair.append("a beard")
    if on["5_o_Clock_Shadow"]:
        facial_hair.append("stubble")
    if on["Sideburns"]:
        facial_hair.append("sideburns")
    lists = {
        "facial_hair": facial_hair,
        "eyebrows": [
            w for n, w in (("Bushy_Eyebrows", "bushy"), ("Arched_Eyebrows", "arched")) if on[n]
        ],
        "eyes": [w for n, w in (("Narrow_Eyes", "narrow"), ("Bags_Under_Eyes", "bags")) if on[n]],
        "nose": [w for n, w in (("Big_Nose", "big"), ("Pointy_Nose", "pointy")) if on[n]],
        "lips": ["big"] if on["Big_Lips"] else [],
        "face": [
            w
            for n, w in (
                ("Oval_Face", "an oval face"),
                ("Chubby", "a chubby face"),
                ("Double_Chin", "a double chin"),
                ("High_Cheekbones", "high cheekbones"),
                ("Rosy_Cheeks", "rosy cheeks"),
            )
            if on[n]
        ],
        "wearing": [
            w
            for n, w in (
                ("Eyeglasses", "glasses"),
                ("Wearing_Earrings", "earrings"),
                ("Wearing_Hat", "a hat"),
                ("Wearing_Necklace", "a necklace"),
                ("Wearing_Necktie", "a necktie"),
                ("Wearing_Lipstick", "lipstick"),
                ("Heavy_Makeup", "heavy makeup"),
            )
            if on[n]
        ],
    }
    attrs.update({key: words for key, words in lists.items() if words})
    if on["Pale_Skin"]:
        attrs["skin_tone"] = "pale"
    return attrs


def _join(words: Sequence[str]) -> str:
    words = [w for w in words if w]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def describe(attrs: Mapping[str, Any]) -> str:
    """One sentence for structured attributes (keys as in :data:`KEYS`).

    Order: who (expression, age, baldness, gender), hair, facial hair, eyes, nose,
    mouth, face and skin, then what the person wears and the pose. Unknown keys
    are an error, so a misspelled attribute is not silently dropped; ``None``
    values count as unknown.
    """
    attrs = {key: value for key, value in attrs.items() if value is not None}
    unknown = sorted(set(attrs) - set(KEYS))
    if unknown:
        raise InputError(
            f"describe(): unknown attribute(s) {', '.join(unknown)}; known: {', '.join(KEYS)}"
        )
    noun = {"male": "man", "female": "woman"}.get(attrs.get("gender"), "person")
    adjectives = [
        "smiling" if attrs.get("smiling") else "",
        attrs.get("age", "") or "",
        "bald" if attrs.get("bald") else "",
    ]
    subject = " ".join(w for w in [*adjectives, noun] if w)
    article = "an" if subject[0] in "aeiou" else "a"

    parts: list[str] = []
    hair = " ".join(w for w in (attrs.get("hair_texture"), attrs.get("hair_color")) if w)
    if hair and not attrs.get("bald"):
        parts.append(f"{hair} hair")
    if attrs.get("bangs") and not attrs.get("bald"):
        parts.append("bangs")
    if attrs.get("receding_hairline"):
        parts.append("a receding hairline")
    parts.extend(attrs.get("facial_hair", []))
    if attrs.get("eyebrows"):
        parts.append(" ".join(attrs["eyebrows"]) + " eyebrows")
    eyes = attrs.get("eyes", [])
    eye_words = [w for w in ("narrow" if "narrow" in eyes else "", attrs.get("eye_color")) if w]
    if eye_words:
        parts.append(" ".join(eye_words) + " eyes")
    if "bags" in eyes:
        parts.append("bags under the eyes")
    if attrs.get("nose"):
        parts.append("a " + " ".join(attrs["nose"]) + " nose")
    lips = " ".join(w for w in (*attrs.get("lips", []), attrs.get("lip_color")) if w)
    if lips:
        parts.append(f"{lips} lips")
    if attrs.get("mouth_open"):
        parts.append("a slightly open mouth")
    parts.extend(attrs.get("face", []))
    if attrs.get("skin_tone"):
        parts.append(f"{attrs['skin_tone']} skin")

    sentence = f"{article} {subject}"
    if parts:
        sentence += " with " + _join(parts)
    if attrs.get("wearing"):
        sentence += ", wearing " + _join(attrs["wearing"])
    if attrs.get("pose") == "turned":
        sentence += ", head turned to one side"
    return sentence


def fs2k_sentence(record: Mapping[str, Any], photo: np.ndarray | None = None) -> str:
    """:func:`describe` of :func:`fs2k_attributes`."""
    return describe(fs2k_attributes(record, photo))


def celeba_sentence(row: Mapping[str, Any]) -> str:
    """:func:`describe` of :func:`celeba_attributes`."""
    return describe(celeba_attributes(row))
