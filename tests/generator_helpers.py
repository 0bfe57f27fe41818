"""A tiny generator configuration shared by the generator, sampler and loss tests."""

from __future__ import annotations

import pytest

TINY = {
    "image_size": 16,
    "block_out_channels": (8, 16),
    "attention_levels": (False, True),
    "cross_attention_dim": 16,
    "attention_heads": 2,
    "norm_num_groups": 4,
    "identity_dim": 8,
    "identity_tokens": 2,
    "text_tokens": 4,
    "text_dim": 12,
    "face_encoder": "tiny-face",
    "text_encoder": "tiny-text",
}
"""Matches tests/plugins/generator_toys.py (8-d identity, 4 text tokens of 12) at 16×16."""


def tiny_generator(seed: int = 0, **changes):
    import torch

    from facefit.generator import FaceGenerator

    torch.manual_seed(seed)
    return FaceGenerator(**{**TINY, **changes}).eval()


def toy_registry():
    from facefit import Registry
    from tests.plugins import generator_toys

    return Registry.load(plugins=[("generator-toys", generator_toys)])


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Run tiny models on one thread: for them intra-op threads are pure overhead,
    and on a busy machine every op would wait for a descheduled thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
