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


def test_environment_variable_limits_third_party_plugins_only(vendor_site, monkeypatch):
    monkeypatch.setenv(ENV_LOAD_PLUGINS, "acme")
    registry = Registry.load()
    vendors = {n for n, i in registry.plugins.items() if i.package != "facefit"}
    assert vendors == {"acme"} and not registry.failures
    assert "exact" in registry.list_retrievers() and "sface" in registry.list_face_encoders()
    # the guide's tip (FACEFIT_LOAD_PLUGINS=my-plugin) keeps the pipeline whole
    assert "ddpm" in registry.list_samplers() and "eager" in registry.list_denoiser_backends()
    assert "yunet" in registry.list_face_detectors() and registry.list_conditioners()
    monkeypatch.setenv(ENV_LOAD_PLUGINS, "")
    builtins_only = Registry.load()
    assert {i.package for i in builtins_only.plugins.values()} == {"facefit"}
    assert "exact" in builtins_only.list_retrievers()
    # allow= in code names exactly what loads (a lean registry), built-ins included
    assert set(Registry.load(allow={"acme"}).plugins) == {"acme"}


def test_registries_are_independent():
    a, b = load(good), load()
    assert a.list_face_encoders() == ["mean-colour"] and b.list_face_encoders() == []


# -- plugins cannot take the host down ------------------------------------------------------


@pytest.fixture
def hostile_site(tmp_path, monkeypatch):
    """A good vendor package beside ones whose import calls sys.exit or raises KeyboardInterrupt."""
    fake_distribution(tmp_path, "acme-faces", "2.1.0", {"acme": "tests.plugins.good"})
    fake_distribution(tmp_path, "exit-faces", "0.1.0", {"exits": "tests.plugins.exits_on_import"})
    fake_distribution(
        tmp_path, "ctrl-c-faces", "0.1.0", {"interrupts": "tests.plugins.interrupts_on_import"}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(ENV_LOAD_PLUGINS, raising=False)
    return tmp_path


def test_sys_exit_or_interrupt_in_a_plugin_import_fails_that_plugin_only(hostile_site):
    registry = Registry.load()
    failures = {f.plugin: f for f in registry.failures}
    assert set(failures) == {"exits", "interrupts"}
    assert failures["exits"].package == "exit-faces"
    assert "sys.exit(3)" in failures["exits"].error
    assert "KeyboardInterrupt" in failures["interrupts"].error
    assert registry.create_face_encoder("mean-colour").dim == 12
    assert "exact" in registry.list_retrievers()  # the built-ins are all there


def test_sys_exit_in_a_hook_fails_that_plugin_only():
    from tests.plugins import exits_in_hook

    registry = load(exits_in_hook, good)
    (failure,) = registry.failures
    assert failure.plugin == "exits_in_hook" and "no licence key found" in failure.error
    assert registry.list_face_encoders() == ["mean-colour"]


def test_facefit_plugins_lists_a_plugin_that_exits_on_import(hostile_site):
    from click.testing import CliRunner

    from facefit.cli import main

    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "FAILED plugin 'exits' from package 'exit-faces'" in result.output
    assert "FAILED plugin 'interrupts'" in result.output
    assert "acme-faces 2.1.0" in result.output and "retrievers" in result.output


@pytest.fixture
def clashing_site(tmp_path, monkeypatch):
    """Two vendor packages registering the same face encoder name, and a third one."""
    fake_distribution(tmp_path, "acme-faces", "2.1.0", {"acme": "tests.plugins.good"})
    fake_distribution(tmp_path, "other-faces", "1.0.0", {"other": "tests.plugins.duplicate"})
    fake_distribution(tmp_path, "misc-faces", "1.0.0", {"misc": "tests.plugins.eval_codes"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(ENV_LOAD_PLUGINS, raising=False)
    return tmp_path


def test_the_conflict_message_gives_advice_that_works(clashing_site, monkeypatch):
    import re

    registry = Registry.load()
    with pytest.raises(DuplicatePluginError) as caught:
        registry.create_face_encoder("mean-colour")
    message = str(caught.value)
    assert "pip uninstall other-faces" in message and "built-in plugins always load" in message
    advice = dict(
        (package, value)
        for value, package in re.findall(r"FACEFIT_LOAD_PLUGINS=(\S+) keeps '([\w-]+)'", message)
    )
    assert set(advice) == {"acme-faces", "other-faces"}
    assert advice["acme-faces"].split(",") == ["acme", "misc"]  # the bystander stays
    for package, value in advice.items():
        monkeypatch.setenv(ENV_LOAD_PLUGINS, value)
        followed = Registry.load()
        assert not followed.conflicts
        entry = followed.entry("face_encoder", "mean-colour")
        assert entry.plugin.package == package
        assert {"exact", "hnswlib"} <= set(followed.list_retrievers())  # pipeline still whole
        assert "sface" in followed.list_face_encoders()
