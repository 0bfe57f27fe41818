"""The generator model: shapes, evidence handling and files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facefit.errors import InputError, WeightsNotFoundError
from facefit.generator import FaceGenerator, domain_condition, load_generator
from facefit.generator.conditions import (
    ConditionTensors,
    degrade,
    empty_conditions,
    images_to_tensor,
    lq_tensor,
    tensor_to_images,
)
from facefit.generator.loading import DEFAULT_MODEL_DIR
from facefit.types import Condition
from tests.generator_helpers import TINY, single_thread, tiny_generator  # noqa: F401 (autouse)


def _random_conditions(model, batch: int = 3, seed: int = 0) -> ConditionTensors:
    g = torch.Generator().manual_seed(seed)
    sizes = model.condition_sizes()
    s = sizes["image_size"]
    return ConditionTensors(
        sketch=torch.rand(batch, 1, s, s, generator=g) * 2 - 1,
        sketch_present=torch.ones(batch),
        lq=torch.rand(batch, 3, s, s, generator=g) * 2 - 1,
        lq_present=torch.ones(batch),
        reference=torch.randn(batch, sizes["identity_dim"], generator=g),
        reference_present=torch.ones(batch),
        text=torch.randn(batch, sizes["text_tokens"], sizes["text_dim"], generator=g),
        text_present=torch.ones(batch),
        domain=torch.zeros(batch, dtype=torch.long),
    )


def test_forward_and_denoiser_contract():
    model = tiny_generator()
    cond = _random_conditions(model)
    out = model(torch.randn(3, 3, 16, 16), torch.tensor([0, 10, 999]), cond)
    assert out.shape == (3, 3, 16, 16)
    d = model.denoiser
    assert (d.in_channels, d.out_channels, d.image_size) == (9, 3, 16)
    assert (d.num_tokens, d.token_dim) == (1 + 2 + 4, 16)
    spatial, tokens = model.encode_conditions(cond)
    assert spatial.shape == (3, 6, 16, 16) and tokens.shape == (3, 7, 16)


def _evidence_conditions(seed: int = 0) -> list[Condition]:
    g = torch.Generator().manual_seed(seed)
    return [
        Condition("sketch", spatial=torch.rand(1, 16, 16, generator=g) * 2 - 1),
        Condition("lq", spatial=torch.rand(3, 16, 16, generator=g) * 2 - 1),
        Condition("reference", tokens=torch.randn(1, 8, generator=g)),
        Condition("text", tokens=torch.randn(4, 12, generator=g)),
        domain_condition("photo"),
    ]


@pytest.mark.parametrize("modality", ["sketch", "lq", "reference", "text"])
def test_a_dropped_modality_is_exactly_the_null_condition(modality):
    """Training drops by zeroing + presence 0; sampling passes null conditions: same input."""
    model = tiny_generator()
    conditions = _evidence_conditions()
    full = model.conditions_to_tensors(conditions)
    dropped = full.drop(modality, torch.tensor([True]))
    nulled = model.conditions_to_tensors(
        [c.null() if c.modality == modality else c for c in conditions]
    )
    for name in full.__dict__:
        assert torch.equal(getattr(dropped, name), getattr(nulled, name)), name
    assert dropped.present(modality).item() == 0 and full.present(modality).item() == 1
    with torch.no_grad():
        a, b = model.encode_conditions(dropped), model.encode_conditions(nulled)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_absent_values_are_ignored_and_presence_is_seen():
    model = tiny_generator()
    cond = _random_conditions(model, batch=1)
    absent = cond.drop("reference", torch.tensor([True]))
    garbage = ConditionTensors(**{**absent.__dict__, "reference": torch.randn(1, 8)})
    assert torch.equal(model.encode_conditions(absent)[1], model.encode_conditions(garbage)[1])
    assert not torch.equal(model.encode_conditions(cond)[1], model.encode_conditions(absent)[1])


def test_conditions_to_tensors_checks_shapes_and_reads_the_domain():
    model = tiny_generator()
    sketch = Condition("sketch", spatial=torch.zeros(1, 16, 16))
    cond = model.conditions_to_tensors([sketch, domain_condition("sketch")])
    assert cond.sketch_present.tolist() == [1.0] and cond.domain.tolist() == [1]
    assert cond.text_present.tolist() == [0.0]
    with pytest.raises(InputError, match=r"sketch condition.*\(1, 16, 16\).*image_size=16"):
        model.conditions_to_tensors([Condition("sketch", spatial=torch.zeros(1, 64, 64))])
    with pytest.raises(InputError, match="unknown target domain"):
        domain_condition("painting")
    empty = model.conditions_to_tensors([sketch.null()])
    reference = empty_conditions(1, **model.condition_sizes())
    assert all(torch.equal(getattr(empty, k), getattr(reference, k)) for k in empty.__dict__)


def test_save_and_load_are_bit_exact(tmp_path):
    model = tiny_generator(seed=3)
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "README.md",
    }
    loaded = load_generator(tmp_path / "m")
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["_class_name"] == "FaceGenerator" and config["text_tokens"] == TINY["text_tokens"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert "Intended use" in card and "parameters" in card
    cond = _random_conditions(model, batch=2)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 500])
    with torch.no_grad():
        assert torch.equal(model(x, t, cond), loaded(x, t, cond))


def test_fp16_files_hold_the_rounded_weights_and_leave_the_model_alone(tmp_path):
    model = tiny_generator(seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.save_pretrained(tmp_path / "half", fp16=True)
    model.save_pretrained(tmp_path / "full")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == torch.float32
    half = load_generator(tmp_path / "half")
    assert next(half.parameters()).dtype == torch.float32
    for k, v in half.state_dict().items():
        assert torch.equal(v, before[k].half().float()), k
    size = lambda d: (tmp_path / d / "diffusion_pytorch_model.safetensors").stat().st_size  # noqa: E731
    assert size("half") < 0.6 * size("full")


def test_missing_model_errors_say_what_to_do(tmp_path):
    with pytest.raises(InputError, match="not a generator directory"):
        load_generator(tmp_path)
    if not (DEFAULT_MODEL_DIR / "config.json").exists():
        with pytest.raises(WeightsNotFoundError, match="facefit train"):
            load_generator("default")


def test_low_quality_copies_in_training_match_the_conditioner_path():
    """An 8-bit low-quality frame reaches the model exactly as training's copies do."""
    photos = images_to_tensor(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), np.uint8))
    small = degrade(photos, 8)
    as_frames = tensor_to_images(small)  # what a camera would store
    assert torch.equal(images_to_tensor(as_frames), small)
    assert torch.equal(lq_tensor(as_frames, 64), lq_tensor(small, 64))


def test_wrong_attention_levels_is_a_clear_error():
    with pytest.raises(ValueError, match="attention_levels"):
        FaceGenerator(**{**TINY, "attention_levels": (True,)})
