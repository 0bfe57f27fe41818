"""The plugin registry: discovery, isolation of failures, conflicts and options."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from facefit import (
    DuplicatePluginError,
    PluginError,
    PluginOptionError,
    Registry,
    UnknownPluginError,
)
from facefit.plugins import ENV_LOAD_PLUGINS
from facefit.testing import fake_distribution
from tests.plugins import duplicate, good, misspelled, not_an_interface, raises_in_hook


def load(*plugins):
    return Registry.load(
        entry_points=False, plugins=[(p.__name__.split(".")[-1], p) for p in plugins]
    )


def test_plugin_registers_by_name_and_creates_instances():
    registry = load(good)
    assert registry.list_face_encoders() == ["mean-colour"]
    encoder = registry.create_face_encoder("mean-colour")
    vectors = encoder.embed(np.zeros((2, 32, 32, 3), np.uint8) + 10)
    assert vectors.shape == (2, 12)
    assert registry.provides("good")[0].name in {"mean-colour", "needs-path"}


def test_unknown_name_lists_the_known_names():
    registry = load(good)
    with pytest.raises(
        UnknownPluginError, match=r"unknown face encoder 'sfase'; known: mean-colour"
    ):
        registry.create_face_encoder("sfase")


def test_two_plugins_registering_one_name_is_an_error_naming_both(caplog):
    with caplog.at_level(logging.WARNING):
        registry = load(good, duplicate)
    with pytest.raises(DuplicatePluginError) as info:
        registry.create_face_encoder("mean-colour")
    message = str(info.value)
    assert "'good'" in message and "'duplicate'" in message
    assert registry.conflicts == [message]
    # other names of the same plugins still work
    assert "needs-path" in registry.list_retrievers()


def test_plugin_raising_in_its_hook_is_reported_and_others_keep_working():
    registry = load(raises_in_hook, good)
    assert [f.plugin for f in registry.failures] == ["raises_in_hook"]
    assert "weights for the sampler are corrupt" in registry.failures[0].error
    assert registry.list_face_encoders() == ["mean-colour"]
    assert "raises_in_hook" not in registry.plugins


def test_misspelled_hook_fails_loudly_with_a_suggestion():
    registry = load(misspelled, good)
    (failure,) = registry.failures
    assert failure.plugin == "misspelled"
    assert "register_face_encoder" in failure.error and "register_face_encoders" in failure.error


def test_registering_a_class_of_the_wrong_interface_is_reported():
    registry = load(not_an_interface)
    (failure,) = registry.failures
    assert "must subclass facefit.interfaces.FaceEncoder" in failure.error


def test_missing_required_option_is_named():
    registry = load(good)
    with pytest.raises(PluginOptionError, match=r"retriever 'needs-path' needs option\(s\) path"):
        registry.create_retriever("needs-path")


def test_unknown_option_lists_accepted_options():
    registry = load(good)
    with pytest.raises(
        PluginOptionError, match=r"does not take option\(s\) paht; it accepts: dim, path"
    ):
        registry.create_retriever("needs-path", paht="x")


def test_unknown_kind_is_an_error():
    with pytest.raises(PluginError, match="unknown kind of plugin 'encoder'"):
        load(good).list("encoder")


# -- entry points ---------------------------------------------------------------------------


@pytest.fixture
def vendor_site(tmp_path, monkeypatch):
    """Two installed-looking vendor packages: one good, one whose import fails."""
    fake_distribution(tmp_path, "acme-faces", "2.1.0", {"acme": "tests.plugins.good"})
    fake_distribution(tmp_path, "broken-faces", "0.3.0", {"broken": "tests.plugins.broken_import"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(ENV_LOAD_PLUGINS, raising=False)
    return tmp_path


def test_entry_points_are_discovered_with_package_and_version(vendor_site):
    registry = Registry.load(allow={"acme", "broken"})
    info = registry.plugins["acme"]
    assert (info.package, info.version) == ("acme-faces", "2.1.0")
    assert "mean-colour" in registry.list_face_encoders()


def test_plugin_failing_on_import_is_reported_by_name(vendor_site, caplog):
    with caplog.at_level(logging.WARNING, logger="facefit.plugins"):
        registry = Registry.load(allow={"acme", "broken"})
    (failure,) = registry.failures
    assert failure.plugin == "broken" and failure.package == "broken-faces"
    assert "facefit_dependency_that_does_not_exist" in failure.error
    assert "broken" in caplog.text
    # ... and the good plugin still works, and the failure is hinted at on lookup
    assert registry.create_face_encoder("mean-colour").dim == 12
    with pytest.raises(UnknownPluginError, match="failed to load: broken"):
        registry.create_face_encoder("broken-encoder")


def test_environment_variable_limits_which_plugins_load(vendor_site, monkeypatch):
    monkeypatch.setenv(ENV_LOAD_PLUGINS, "acme")
    registry = Registry.load()
    assert set(registry.plugins) == {"acme"} and not registry.failures
    monkeypatch.setenv(ENV_LOAD_PLUGINS, "")
    assert Registry.load().plugins == {}


def test_registries_are_independent():
    a, b = load(good), load()
    assert a.list_face_encoders() == ["mean-colour"] and b.list_face_encoders() == []
