"""The plugin contract has one source: every kind of facefit.kinds is wired everywhere."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest

from facefit import Registry, hookimpl, hookspecs, testing
from facefit.errors import InputError, PluginError
from facefit.interfaces import Conditioner, Sampler
from facefit.kinds import KINDS, kind
from facefit.types import Condition

REPO = Path(__file__).resolve().parents[1]
IDS = [k.name for k in KINDS]


@pytest.mark.parametrize("k", KINDS, ids=IDS)
def test_every_kind_has_a_documented_hook_spec(k):
    spec = getattr(hookspecs, k.hook)
    assert spec.__doc__ and f"facefit.interfaces.{k.interface.__name__}" in spec.__doc__
    assert hookspecs.HOOKS[k.name] == k.hook


@pytest.mark.parametrize("k", KINDS, ids=IDS)
def test_every_kind_has_a_conformance_mixin(k):
    mixin = getattr(testing, k.tests)
    assert mixin.kind == k.name and mixin.interface is k.interface
    assert k.tests in testing.__all__


@pytest.mark.parametrize("k", KINDS, ids=IDS)
def test_every_kind_has_typed_registry_methods(k):
    create = getattr(Registry, f"create_{k.name}")
    listing = getattr(Registry, f"list_{k.plural}")
    hints = typing.get_type_hints(create)
    assert hints["return"] is k.interface
    assert typing.get_type_hints(listing)["return"] == list[str]
    assert inspect.getdoc(create) and inspect.getdoc(listing)


@pytest.mark.parametrize("k", KINDS, ids=IDS)
def test_every_kind_is_in_the_plugin_guide(k):
    guide = (REPO / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    for word in (k.hook, k.tests, k.interface.__name__):
        assert f"`{word}" in guide, f"docs/writing-plugins.md does not mention {word}"
    for option in k.host_options:
        assert f"`{option}`" in guide, f"document host option {option!r} of {k.name}"


def test_the_registry_no_longer_invents_methods():
    with pytest.raises(AttributeError):
        Registry.load(entry_points=False).create_face_encoders  # noqa: B018 (plural: no such method)


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(PluginError, match="face_encoder"):
        kind("face_encodr")


# -- host options: declared, never guessed from a signature -------------------------------------


class _Recorder(Conditioner):
    """Records what the host passed it."""

    name = "recorder"
    modality = "sketch"
    channels = 1
    host_options = ("image_size",)

    def __init__(self, image_size: int = 64, **others) -> None:
        self.image_size, self.others = image_size, others

    def encode(self, evidence):  # pragma: no cover - not sampled here
        return Condition("sketch", present=True)


class _Plugin:
    def __init__(self, *classes) -> None:
        self.classes = classes

    @hookimpl
    def register_conditioners(self, register):
        for cls in self.classes:
            register(cls)


def test_the_host_passes_only_the_options_an_implementation_declares():
    registry = Registry.load(entry_points=False, plugins=[("rec", _Plugin(_Recorder))])
    made = registry.create_hosted(
        "conditioner", "recorder", {"image_size": 16, "registry": registry, "detector": "yunet"}
    )
    assert made.image_size == 16 and made.others == {}  # **others is not an invitation
    given = registry.create_hosted("conditioner", "recorder", {"image_size": 16}, image_size=32)
    assert given.image_size == 32, "the user's option wins over the host's"


def test_a_host_option_the_kind_is_not_offered_is_refused_at_registration():
    class Greedy(_Recorder):
        name = "greedy"
        host_options = ("image_size", "generator")

    registry = Registry.load(entry_points=False, plugins=[("greedy", _Plugin(Greedy))])
    (failure,) = registry.failures
    assert "declares host option(s) generator" in failure.error
    assert "offered: image_size, registry, encoder, detector" in failure.error


def test_the_host_offers_each_kind_only_its_own_options():
    registry = Registry.load(entry_points=False, plugins=[("rec", _Plugin(_Recorder))])
    with pytest.raises(PluginError, match="not offered host option"):
        registry.create_hosted("conditioner", "recorder", {"generator": object()})


# -- optional abilities: declared, with a default that refuses clearly -----------------------


class _OneAtATime(Sampler):
    name = "one-at-a-time"

    def sample(self, denoiser, conditions, *, num_images, steps, guidance, seed):
        raise AssertionError("not sampled here")


def test_a_sampler_without_batches_refuses_denoise_and_augment_says_which_to_use():
    from facefit.augment.worker import sample_batch

    sampler = _OneAtATime()
    assert not sampler.batches and not sampler.reports_steps
    with pytest.raises(PluginError, match="does not declare `batches`"):
        sampler.denoise(None, None, None, None, steps=1, guidance=1.0, seed=0)
    with pytest.raises(InputError, match="use ddim, ddpm or dpm-solver"):
        sample_batch(None, None, sampler, None, None, [0], steps=1, guidance=1.0)


def test_built_in_abilities_are_declared():
    registry = Registry.load(allow=["samplers", "retrievers", "scann"])
    ddim = registry.create_sampler("ddim")
    assert ddim.batches and ddim.reports_steps and ddim.host_options == ("generator",)
    assert registry.create_retriever("exact", dim=4).search_breadth is None
    hnsw = registry.create_retriever("hnswlib", dim=4)
    assert hnsw.search_breadth.option == "ef" and hnsw.breadth == hnsw.ef
    hnsw.set_breadth(77)
    assert hnsw.ef == 77


def test_the_guides_hook_reference_is_the_one_made_from_the_kind_table():
    from facefit.kinds import hook_reference

    guide = (REPO / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    assert hook_reference() in guide, (
        "docs/writing-plugins.md's hook reference differs from facefit.kinds.hook_reference(); "
        "paste its output into the guide"
    )
