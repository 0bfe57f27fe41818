"""The built-in conditioners: conformance, shapes, and the same path as training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facefit.generator.conditions import degrade, images_to_tensor, lq_tensor, tensor_to_images
from facefit.testing import ConditionerTests, random_faces
from facefit.types import Evidence
from tests.generator_helpers import single_thread, toy_registry  # noqa: F401 (autouse)


class TestSketchConditioner(ConditionerTests):
    plugin_name = "sketch"

    def make(self):
        return toy_registry().create_conditioner("sketch", image_size=16)

    def evidence(self):
        drawing = np.full((48, 40), 255, np.uint8)
        drawing[10:30, 12] = 0
        return Evidence(sketch=drawing)


class TestLowQualityConditioner(ConditionerTests):
    plugin_name = "lq"

    def make(self):
        return toy_registry().create_conditioner("lq", image_size=16)

    def evidence(self):
        return Evidence(lq=random_faces(1, 8)[0])


class TestTextConditioner(ConditionerTests):
    plugin_name = "text"

    def make(self):
        return toy_registry().create_conditioner(
            "text", encoder="tiny-text", registry=toy_registry()
        )

    def evidence(self):
        return Evidence(text="a young man with glasses")


class TestReferenceConditioner(ConditionerTests):
    plugin_name = "reference"

    def make(self):
        registry = toy_registry()
        return registry.create_conditioner(
            "reference", encoder="tiny-face", detector="fixed-landmarks", registry=registry
        )

    def evidence(self):
        return Evidence(reference=random_faces(1, 32)[0])


def test_sketch_map_is_grey_in_range_and_resized():
    cond = TestSketchConditioner().make()
    rgb = np.full((40, 40, 3), 255, np.uint8)
    rgb[:, 20] = 0
    out = cond(Evidence(sketch=rgb)).spatial
    assert out.shape == (1, 16, 16) and out.min() >= -1 and out.max() <= 1
    assert out.min() < 0.5 < out.max()  # a line on paper survives resizing


def test_lq_condition_is_the_training_copy_of_the_same_frame():
    photo = images_to_tensor(random_faces(1, 16, seed=5))
    frame = tensor_to_images(degrade(photo, 8))[0]  # what training made, stored as 8-bit
    cond = TestLowQualityConditioner().make()(Evidence(lq=frame))
    assert torch.equal(cond.spatial, lq_tensor(degrade(photo, 8), 16)[0])


def test_text_tokens_are_zero_under_padding():
    cond = TestTextConditioner().make()
    tokens = cond(Evidence(text="two words")).tokens
    assert tokens.shape == (4, 12) and tokens[:2].abs().sum() > 0 and not tokens[2:].any()


def test_text_condition_states_the_described_attributes():
    from facefit.text_agreement import ATTRIBUTE_FEATURES

    cond = TestTextConditioner().make()
    made = cond(Evidence(text="a smiling man with blond hair"))
    stated = {n for n, v in zip(ATTRIBUTE_FEATURES, made.vector.tolist(), strict=True) if v}
    assert stated == {"female_not", "smiling", "bald_not", "hair_golden"}
    assert not cond(Evidence(text="a face")).vector.any()
    assert not made.null().vector.any()


def test_reference_crop_and_photo_paths():
    cond = TestReferenceConditioner().make()
    ramp = np.linspace(0, 255, 64)
    crop = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 60.0), -1).astype(np.uint8)
    a = cond(Evidence(reference=crop)).tokens
    b = cond(Evidence(reference=crop[1::2, 1::2].copy())).tokens  # same face, smaller crop
    assert a.shape == (1, 8)
    assert float((a * b).sum()) > 0.99  # embeddings are L2-normalized: a cosine
    wide = np.zeros((64, 96, 3), np.uint8)
    wide[:, 16:80] = crop  # not square: the detector frames it
    c = cond(Evidence(reference=wide)).tokens
    assert float((a * c).sum()) > 0.99


def test_encoder_name_unknown_is_a_clear_error():
    from facefit.errors import UnknownPluginError

    with pytest.raises(UnknownPluginError, match="tiny-text"):
        toy_registry().create_conditioner("text", encoder="nope", registry=toy_registry())
