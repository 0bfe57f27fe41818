"""Values passed between parts are immutable and validated."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from facefit import Condition, Evidence, InputError, Match, Result, RoundTrace
from facefit.types import Candidate


def test_evidence_lists_present_modalities_in_order():
    ev = Evidence(text="  a  man with   glasses ", sketch=np.zeros((8, 8), np.uint8))
    assert ev.modalities == ("sketch", "text")
    assert ev.text == "a man with glasses"
    assert ev.has("sketch") and not ev.has("lq")


def test_evidence_images_are_copied_and_read_only():
    sketch = np.zeros((8, 8), np.uint8)
    ev = Evidence(sketch=sketch)
    sketch[0, 0] = 255
    assert ev.sketch[0, 0] == 0
    with pytest.raises(ValueError):
        ev.sketch[0, 0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.text = "changed"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sketch": np.zeros((8, 8), np.float32)}, "evidence sketch: expected a uint8"),
        ({"lq": np.zeros((8, 8, 4), np.uint8)}, "low-quality image: expected shape"),
        ({"reference": np.zeros((8, 8), np.uint8)}, "reference face: expected an RGB"),
        ({"text": 3}, "evidence text: expected a string"),
    ],
)
def test_bad_evidence_names_the_input(kwargs, message):
    with pytest.raises(InputError, match=message):
        Evidence(**kwargs)


def test_empty_evidence_is_refused_when_required():
    with pytest.raises(InputError, match="no evidence given"):
        Evidence(text="   ").require_any()


def test_condition_null_is_zeros_of_the_same_shape():
    cond = Condition("text", tokens=torch.ones(4, 8), spatial=torch.ones(2, 4, 4))
    null = cond.null()
    assert not null.present and null.tokens.shape == (4, 8) and not null.tokens.any()
    assert null.spatial.shape == (2, 4, 4) and not null.spatial.any()
    with pytest.raises(InputError, match="tokens must be"):
        Condition("text", tokens=torch.ones(8))
    with pytest.raises(InputError, match="needs tokens"):
        Condition("text")


def test_result_collects_candidates_over_rounds():
    face = np.zeros((4, 4, 3), np.uint8)
    c0 = Candidate(face, round=0, index=0, seed=1, evidence_scores={"sketch": 0.5, "lq": 0.7})
    assert c0.consistency == pytest.approx(0.6)
    rounds = (RoundTrace(0, (c0,), ()), RoundTrace(1, (c0,), ()))
    result = Result(matches=(Match("id1", 0.9, 1), Match("id2", 0.5, 2)), rounds=rounds)
    assert len(result.candidates) == 2 and result.top(1)[0].identity == "id1"
