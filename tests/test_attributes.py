"""Attribute sentences for FS2K and CelebA."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facefit.datasets.attributes import (
    CELEBA_ATTRIBUTES,
    KEYS,
    celeba_attributes,
    celeba_sentence,
    describe,
    eye_color_name,
    fs2k_attributes,
    fs2k_sentence,
    lip_color_name,
    skin_tone_name,
)
from facefit.errors import InputError


def _celeba_row(**on: bool) -> dict[str, str]:
    row = {"image": "x.jpg", "celeba_identity": "1", "has_attrs": "1"}
    row.update({name: "1" if on.get(name) else "-1" for name in CELEBA_ATTRIBUTES})
    row["No_Beard"] = "-1" if on.get("beard") else "1"
    return row


FS2K_RECORD = {
    "id": "photo1_0001",
    "skin_color": [10, 10],
    "lip_color": [190.0, 80.0, 85.0],
    "eye_color": [90.0, 70.0, 60.0],
    "hair": 0,
    "hair_color": 4,
    "gender": 1,
    "earring": 0,
    "smile": 0,
    "frontal_face": 0,
    "style": 1,
}


def test_celeba_example_sentence():
    row = _celeba_row(
        Smiling=True, Young=True, Blond_Hair=True, Wavy_Hair=True, Wearing_Earrings=True, Bangs=True
    )
    assert celeba_sentence(row) == (
        "a smiling young woman with wavy blond hair and bangs, wearing earrings"
    )


def test_celeba_man_with_facial_hair_and_glasses():
    row = _celeba_row(
        Male=True,
        Bald=True,
        Goatee=True,
        beard=True,
        Eyeglasses=True,
        Big_Nose=True,
        Black_Hair=True,
    )
    attrs = celeba_attributes(row)
    assert attrs["bald"] and "hair_color" not in attrs  # bald wins over a hair colour
    assert attrs["facial_hair"] == ["a goatee"]
    assert describe(attrs) == "an older bald man with a goatee and a big nose, wearing glasses"


def test_celeba_beard_without_goatee_or_mustache():
    attrs = celeba_attributes(_celeba_row(Male=True, Young=True, beard=True, Sideburns=True))
    assert attrs["facial_hair"] == ["a beard", "sideburns"]


def test_celeba_missing_attributes_are_errors():
    row = _celeba_row()
    row["has_attrs"] = "0"
    with pytest.raises(InputError, match="has_attrs"):
        celeba_attributes(row)
    row = _celeba_row()
    del row["Smiling"]
    with pytest.raises(InputError, match="Smiling"):
        celeba_attributes(row)
    with pytest.raises(InputError, match="expected 1 or -1"):
        celeba_attributes({**_celeba_row(), "Male": "yes"})


def test_fs2k_codes_follow_the_dataset():
    photo = np.full((40, 40, 3), (210, 170, 140), np.uint8)
    attrs = fs2k_attributes(FS2K_RECORD, photo)
    assert attrs == {
        "gender": "female",
        "smiling": True,
        "bald": False,
        "hair_color": "golden",
        "wearing": ["earrings"],
        "pose": "frontal",
        "lip_color": "red",
        "eye_color": "brown",
        "skin_tone": "fair",
    }
    assert fs2k_sentence(FS2K_RECORD, photo) == (
        "a smiling woman with golden hair, brown eyes, red lips and fair skin, wearing earrings"
    )
    other = {
        **FS2K_RECORD,
        "gender": 0,
        "smile": 1,
        "earring": 1,
        "frontal_face": 1,
        "hair": 1,
        "hair_color": 3,
    }
    assert fs2k_sentence(other) == (
        "a bald man with brown eyes and red lips, head turned to one side"
    )


def test_fs2k_bad_values_are_errors():
    with pytest.raises(InputError, match="lip_color"):
        fs2k_attributes({**FS2K_RECORD, "lip_color": [1, 2]})


def test_fs2k_skin_sample_off_the_photo_leaves_skin_tone_unknown(caplog):
    attrs = fs2k_attributes({**FS2K_RECORD, "skin_color": [99, 5]}, np.zeros((20, 20, 3), np.uint8))
    assert "skin_tone" not in attrs and "gender" in attrs
    assert "outside the 20×20 photo" in caplog.text


def test_colour_names():
    assert skin_tone_name((250, 225, 210)) == "very fair"
    assert skin_tone_name((90, 55, 40)) == "dark"
    assert lip_color_name((60, 30, 30)) == "dark"
    assert lip_color_name((200, 170, 165)) == "pale"
    assert eye_color_name((30, 25, 20)) == "dark" and eye_color_name((160, 150, 140)) == "light"


def test_describe_rejects_unknown_keys_and_is_deterministic():
    with pytest.raises(InputError, match="hair_colour"):
        describe({"hair_colour": "red"})
    assert describe({}) == "a person"
    attrs = {key: None for key in KEYS}
    assert describe(attrs) == describe(dict(reversed(attrs.items())))


@pytest.mark.shared_data
def test_every_real_annotation_gives_a_sentence(shared_data):
    import csv

    records = json.loads((shared_data / "fs2k-train" / "annotations.json").read_text())
    sentences = {fs2k_sentence(r) for r in records}
    assert len(sentences) > 50 and all(s.startswith("a ") for s in sentences)
    with (shared_data / "celeba-subset" / "identities.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["has_attrs"] == "1"]
    assert len({celeba_sentence(r) for r in rows}) > 0.9 * len(rows)
