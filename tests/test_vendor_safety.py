"""What keeps a vendor's plugin from breaking facefit: reserved names, warnings about
FACEFIT_LOAD_PLUGINS, the plugin's package named when it is missing, options on the
command line, and the conformance kits for samplers and losses."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facefit import Registry
from facefit.gallery import GalleryError, GalleryIndex
from facefit.plugins import ENV_LOAD_PLUGINS
from facefit.testing import LossTests, SamplerTests, fake_distribution
from tests.plugins.gallery_toys import PatternEncoder, Toys, identity_images


@pytest.fixture
def vendor_site(tmp_path, monkeypatch):
    """An installed-looking package ``acme-retrievers`` providing tests.plugins.vendor_retrievers."""
    site = tmp_path / "site"
    fake_distribution(site, "acme-retrievers", "1.2.0", {"acme": "tests.plugins.vendor_retrievers"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(ENV_LOAD_PLUGINS, raising=False)
    return site


def unit(n: int, dim: int = 48, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_vendor_retriever_named_exact_is_refused_and_the_builtin_keeps_working(
    vendor_site, tmp_path, caplog
):
    # before the vendor is installed: a gallery on the built-in exact search
    data = unit(10)
    builtin_only = Registry.load(allow={"retrievers"})
    gallery = GalleryIndex.create(PatternEncoder, retriever="exact", registry=builtin_only)
    gallery.add(data, [f"p{i}" for i in range(10)])
    gallery.save(tmp_path / "g")
    with caplog.at_level(logging.WARNING, logger="facefit.registry"):
        registry = Registry.load(allow={"retrievers", "acme"})
    (failure,) = [f for f in registry.failures if f.plugin == "acme"]
    assert failure.package == "acme-retrievers"
    assert "retriever 'exact' is the name of a facefit built-in and is reserved" in failure.error
    assert "acme-retrievers-exact" in failure.error and "reserved" in caplog.text
    assert registry.entry("retriever", "exact").plugin.package == "facefit"
    assert "acme-flat" in registry.list_retrievers()  # its other names still work
    reopened = GalleryIndex.load(tmp_path / "g", registry=registry)
    assert [h.identity for h in reopened.search(data[3], k=1)] == ["p3"]
    assert reopened.search(data[3], k=1)[0].score == pytest.approx(1.0, abs=1e-5)


def test_a_misspelt_plugin_in_the_environment_is_warned_about(vendor_site, monkeypatch, caplog):
    monkeypatch.setenv(ENV_LOAD_PLUGINS, "retrievers,acmee")
    with caplog.at_level(logging.WARNING, logger="facefit.plugins"):
        registry = Registry.load()
    assert "retrievers" in registry.plugins
    assert "FACEFIT_LOAD_PLUGINS names plugin 'acmee'" in caplog.text
    assert "did you mean 'acme'?" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="facefit.plugins"):
        Registry.load(allow={"retrievers"})
    assert "loads nothing" not in caplog.text


def test_a_gallery_names_the_package_of_a_missing_retriever(vendor_site, tmp_path):
    registry = Registry.load(allow={"retrievers", "acme"})
    gallery = GalleryIndex.create(PatternEncoder, retriever="acme-flat", registry=registry)
    gallery.add(unit(4), ["a", "b", "c", "d"])
    gallery.save(tmp_path / "g")
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["retriever"]["package"] == {"name": "acme-retrievers", "version": "1.2.0"}
    without = Registry.load(allow={"retrievers"})
    with pytest.raises(GalleryError) as caught:
        GalleryIndex.load(tmp_path / "g", registry=without)
    message = str(caught.value)
    assert "'acme-flat' comes from the package 'acme-retrievers' (version 1.2.0" in message
    assert "pip install 'acme-retrievers==1.2.0'" in message
    from facefit.cli import main

    result = CliRunner().invoke(
        main, ["gallery", "info", "-g", str(tmp_path / "g")], obj={"registry": without}
    )
    assert result.exit_code == 2 and "acme-retrievers" in result.output


def test_builtin_galleries_record_facefit_as_their_retriever_package(tmp_path):
    gallery = GalleryIndex.create(PatternEncoder, retriever="exact")
    gallery.add(unit(2), ["a", "b"])
    gallery.save(tmp_path / "g")
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["retriever"]["package"]["name"] == "facefit"


def test_retriever_options_reach_a_vendor_retriever_from_the_cli(vendor_site, tmp_path):
    from facefit.cli import main

    root = tmp_path / "photos"
    for identity, faces in identity_images(3, 2, seed=1).items():
        (root / identity).mkdir(parents=True)
        for j, face in enumerate(faces):
            Image.fromarray(face).save(root / identity / f"{j}.png")
    registry = Registry.load(allow={"retrievers", "acme"}, plugins=[("toys", Toys())])

    def build(*extra):
        args = ["gallery", "build", str(root), "--out", str(tmp_path / "g"), "--force"]
        args += ["--encoder", "pattern", "--detector", "blob", "--no-progress", *extra]
        return CliRunner().invoke(main, args, obj={"registry": registry})

    result = build("--retriever", "acme-flat", "--retriever-option", "shards=4")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "g" / "manifest.json").read_text())["retriever"]
    assert info["name"] == "acme-flat" and info["params"]["shards"] == 4
    bad = build("--retriever", "acme-flat", "--retriever-option", "shard=4")
    assert bad.exit_code == 2 and "does not take option(s) shard" in bad.output
    assert (
        "expected KEY=VALUE" in build("--retriever", "acme-flat", "--retriever-option", "x").output
    )
    assert "needs a named retriever" in build("--retriever-option", "shards=2").output


def test_option_values_are_read_as_toml_values():
    from facefit.cli.gallery import parse_options

    assert parse_options(("a=8", "b=0.5", "c=true", 'd="x y"', "e=ip")) == {
        "a": 8,
        "b": 0.5,
        "c": True,
        "d": "x y",
        "e": "ip",
    }


class TestDDPMSamplerKit(SamplerTests):
    plugin_name = "ddpm"

    def make(self):
        from facefit_plugins.samplers import DDPMSampler

        return DDPMSampler(generator=self.generator())


class TestDiffusionLossKit(LossTests):
    plugin_name = "diffusion"

    def make(self):
        from facefit_plugins.losses import DiffusionLoss

        return DiffusionLoss()
