"""Samplers with the eager backend on a tiny generator."""

from __future__ import annotations

import numpy as np
import pluggy
import pytest
import torch

from facefit.errors import InputError
from facefit.generator import domain_condition
from facefit.hookspecs import HOOKS
from facefit.testing import DenoiserBackendTests
from facefit.types import Condition
from tests.generator_helpers import single_thread, tiny_generator, toy_registry  # noqa: F401 (autouse)

SAMPLERS = ["ddim", "ddpm", "dpm-solver"]


@pytest.fixture(scope="module")
def model():
    return tiny_generator(seed=1)


@pytest.fixture(scope="module")
def registry():
    return toy_registry()


def _conditions():
    g = torch.Generator().manual_seed(0)
    return [
        Condition("sketch", spatial=torch.rand(1, 16, 16, generator=g) * 2 - 1),
        Condition("text", tokens=torch.randn(4, 12, generator=g)),
        Condition("reference", tokens=torch.zeros(1, 8)).null(),
        domain_condition("photo"),
    ]


class CountingBackend:
    """Wraps a backend and records the batch of every call."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def __call__(self, sample, timestep, encoder_hidden_states):
        self.batches.append(sample.shape[0])
        return self.inner(sample, timestep, encoder_hidden_states)


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_runs_on_the_eager_backend_deterministically(name, model, registry):
    backend = registry.create_denoiser_backend("eager", model=model)
    sampler = registry.create_sampler(name, generator=model)
    kwargs = {"num_images": 2, "steps": 4, "guidance": 2.5}
    first = sampler.sample(backend, _conditions(), seed=7, **kwargs)
    again = sampler.sample(backend, _conditions(), seed=7, **kwargs)
    other = sampler.sample(backend, _conditions(), seed=8, **kwargs)
    assert first.shape == (2, 16, 16, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_guidance_batches_cond_and_null_in_one_call(model, registry):
    backend = CountingBackend(registry.create_denoiser_backend("eager", model=model))
    sampler = registry.create_sampler("ddim", generator=model)
    sampler.sample(backend, _conditions(), num_images=3, steps=5, guidance=3.0, seed=0)
    assert backend.batches == [6] * 5
    backend.batches.clear()
    sampler.sample(backend, _conditions(), num_images=3, steps=5, guidance=1.0, seed=0)
    assert backend.batches == [3] * 5


def test_the_step_loop_makes_no_hook_calls(model, registry, monkeypatch):
    backend = registry.create_denoiser_backend("eager", model=model)
    sampler = registry.create_sampler("dpm-solver", generator=model)
    original = pluggy.HookCaller.__call__

    def guarded(self, *args, **kwargs):
        if self.name in HOOKS.values():  # facefit's hooks only; pytest runs on pluggy too
            raise AssertionError(f"facefit hook {self.name} called while sampling")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pluggy.HookCaller, "__call__", guarded)
    sampler.sample(backend, _conditions(), num_images=1, steps=3, guidance=2.0, seed=0)


def test_sampler_needs_a_generator(registry, model):
    backend = registry.create_denoiser_backend("eager", model=model)
    with pytest.raises(InputError, match="generator="):
        registry.create_sampler("ddim").sample(
            backend, _conditions(), num_images=1, steps=2, guidance=1.0, seed=0
        )


def test_zero_guidance_ignores_the_evidence(model, registry):
    """guidance 0 is the unconditional model: different evidence, same images."""
    backend = registry.create_denoiser_backend("eager", model=model)
    sampler = registry.create_sampler("ddim", generator=model)
    other = [Condition("sketch", spatial=torch.ones(1, 16, 16)), domain_condition("photo")]
    a = sampler.sample(backend, _conditions(), num_images=1, steps=3, guidance=0.0, seed=1)
    b = sampler.sample(backend, other, num_images=1, steps=3, guidance=0.0, seed=1)
    assert np.array_equal(a, b)


class TestEagerBackend(DenoiserBackendTests):
    plugin_name = "eager"

    def make(self):
        return toy_registry().create_denoiser_backend("eager", model=tiny_generator(seed=2))

    def reference(self):
        return tiny_generator(seed=2).denoiser

    def inputs(self):
        g = torch.Generator().manual_seed(0)
        return (
            torch.randn(2, 9, 16, 16, generator=g),
            torch.tensor([10.0, 700.0]),
            torch.randn(2, 7, 16, generator=g),
        )


def test_evidence_to_images_through_the_conditioners(model, registry):
    from facefit.testing import random_faces
    from facefit.types import Evidence

    conditioners = [
        registry.create_conditioner("sketch", image_size=16),
        registry.create_conditioner("lq", image_size=16),
        registry.create_conditioner("text", encoder="tiny-text", registry=registry),
        registry.create_conditioner(
            "reference", encoder="tiny-face", detector="fixed-landmarks", registry=registry
        ),
    ]
    evidence = Evidence(
        sketch=np.full((40, 40), 255, np.uint8), lq=random_faces(1, 8)[0], text="a bald man"
    )
    conditions = [c(evidence) for c in conditioners] + [domain_condition("sketch")]
    assert [c.present for c in conditions[:4]] == [True, True, True, False]
    backend = registry.create_denoiser_backend("eager", model=model)
    images = registry.create_sampler("ddim", generator=model).sample(
        backend, conditions, num_images=2, steps=3, guidance=2.0, seed=0
    )
    assert images.shape == (2, 16, 16, 3)


def test_each_image_starts_from_its_own_seed():
    from facefit_plugins.samplers import initial_noise

    batch = initial_noise(3, 8, seed=10, device="cpu")
    assert torch.equal(batch[2], initial_noise(1, 8, seed=12, device="cpu")[0])
    assert not torch.equal(batch[0], batch[1])
