"""The Python API an application developer uses: settings, evidence from files, results."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from facefit.config import SETTINGS, PipelineConfig, Settings
from facefit.errors import ConfigError, InputError
from facefit.types import EMPTY_TEXT_NOTE, Evidence

DEMO = Path(__file__).resolve().parents[1] / "sdk" / "facefit" / "demo_data"
SKETCH = DEMO / "probes" / "sketch_photo1_0724.png"


def test_settings_are_keyword_arguments_of_the_config():
    config = PipelineConfig(rounds=2, candidates=2, steps=4)
    assert (config.settings.rounds, config.settings.candidates, config.settings.steps) == (2, 2, 4)
    assert config.settings.guidance == Settings().guidance  # the rest keep their defaults
    assert config.source == "<python>" and PipelineConfig().source == "<defaults>"
    assert config.components["sampler"].plugin == "ddpm"
    # a keyword wins over the same setting in `settings`
    assert PipelineConfig(Settings(rounds=5, seed=3), rounds=1).settings == Settings(
        rounds=1, seed=3
    )
    assert config.replace_settings(seed=7).settings.seed == 7
    assert config == PipelineConfig(rounds=2, candidates=2, steps=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"round": 2}, r"unknown setting\(s\) round; known: model, device, rounds"),
        ({"rounds": 0}, "rounds must be at least 1, got 0"),
        ({"steps": "4"}, r"setting steps must be of type int, got '4'"),
        ({"candidates": True}, "setting candidates must be of type int"),
        ({"guidance": -1.0}, "guidance must not be negative"),
        ({"gallery_reference_weight": 2}, "between 0 and 1"),
        ({"stop_when_stable": -1}, "stop_when_stable must be 0 or more"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PipelineConfig(**kwargs)
    if set(kwargs) <= set(SETTINGS):
        with pytest.raises(ConfigError, match=message):
            PipelineConfig().replace_settings(**kwargs)


def test_every_setting_is_documented():
    source = inspect.getsource(Settings)
    for name in SETTINGS:
        assert f"    {name}:" in source
        after = source.split(f"    {name}:", 1)[1].splitlines()[1].strip()
        assert after.startswith('"""'), f"Settings.{name} needs a docstring under it"


def test_from_toml_and_from_config_take_a_path_or_a_config(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text("[pipeline]\nrounds = 2\nsteps = 4\n", encoding="utf-8")
    config = PipelineConfig.from_toml(path)
    assert config.settings.rounds == 2 and config.source == str(path)
    path.write_text("[pipeline]\nrounds = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path.name}: \[pipeline\] rounds must be at least 1"):
        PipelineConfig.from_toml(path)
    from facefit.pipeline import Pipeline

    assert "PipelineConfig" in str(inspect.signature(Pipeline.from_config))


def test_evidence_takes_paths_and_arrays():
    from facefit.imaging.images import load_image

    by_path = Evidence(sketch=SKETCH, text="a man")
    by_str = Evidence(sketch=str(SKETCH))
    by_array = Evidence(sketch=load_image(SKETCH))
    assert by_path.sources == {"sketch": str(SKETCH)}
    assert np.array_equal(by_path.sketch, by_array.sketch)
    assert np.array_equal(by_str.sketch, by_array.sketch) and by_array.sources == {}
    files = Evidence.from_files(sketch=SKETCH, text="a man")
    assert np.array_equal(files.sketch, by_array.sketch) and files.text == "a man"
    with pytest.raises(InputError, match=r"not found|No such file|missing"):
        Evidence(sketch=DEMO / "nope.png")
    with pytest.raises(InputError, match="must be a file path"):
        Evidence.from_files(sketch=by_array.sketch)
    with pytest.raises(InputError, match="no evidence given"):
        Evidence.from_files()
    with pytest.raises(InputError, match=r"pass it as a path .*not inside an array"):
        Evidence(sketch=np.array(str(SKETCH)))


def test_a_blank_description_is_noted_not_silently_dropped():
    evidence = Evidence(sketch=SKETCH, text="  \n ")
    assert evidence.text is None and evidence.notes == (EMPTY_TEXT_NOTE,)
    assert Evidence(sketch=SKETCH, text="a man").notes == ()
    assert Evidence(sketch=SKETCH).notes == ()


def test_a_blank_description_reaches_the_result_notes(tmp_path):
    from facefit.pipeline import Pipeline
    from tests.pipeline_helpers import save_model, toy_config, toy_registry, toy_sketch

    registry = toy_registry()
    config = toy_config(save_model(tmp_path / "m"), rounds=1, candidates=1, steps=1)
    result = Pipeline(config, registry=registry).run(Evidence(sketch=toy_sketch(), text=" "))
    assert EMPTY_TEXT_NOTE in result.rounds[0].notes and EMPTY_TEXT_NOTE in result.notes


def test_result_types_are_documented_field_by_field():
    from dataclasses import fields

    from facefit.types import Candidate, Match, Result, RoundTrace

    for cls in (Evidence, Match, Candidate, RoundTrace, Result):
        source = inspect.getsource(cls)
        for f in fields(cls):
            after = source.split(f"    {f.name}:", 1)[1].splitlines()[1].strip()
            assert after.startswith('"""'), f"{cls.__name__}.{f.name} needs a docstring"


def test_open_or_build_builds_once_then_opens(tmp_path):
    from PIL import Image

    from facefit import Registry
    from facefit.gallery import EncoderMismatchError, GalleryError, GalleryIndex
    from facefit.imaging.faces import FaceEmbedder
    from tests.plugins.gallery_toys import Toys, ToysV2, identity_images

    root = tmp_path / "photos"
    for identity, faces in identity_images(3, 2, seed=1).items():
        (root / identity).mkdir(parents=True)
        for j, face in enumerate(faces):
            Image.fromarray(face).save(root / identity / f"{j}.png")
    registry = Registry.load(allow=["retrievers", "scann", "milvus"], plugins=[("toys", Toys())])
    embedder = FaceEmbedder.from_registry(registry, detector="blob", encoder="pattern")
    built = GalleryIndex.open_or_build(tmp_path / "g", root, embedder=embedder, registry=registry)
    assert (len(built), built.num_identities) == (6, 3)
    (root / "person0" / "0.png").unlink()  # a changed folder is not re-read: the gallery opens
    opened = GalleryIndex.open_or_build(tmp_path / "g", root, embedder=embedder, registry=registry)
    assert len(opened) == 6 and opened.path == tmp_path / "g"
    other = Registry.load(allow=["retrievers", "scann", "milvus"], plugins=[("toys", ToysV2())])
    changed = FaceEmbedder.from_registry(other, detector="blob", encoder="pattern")
    with pytest.raises(EncoderMismatchError):
        GalleryIndex.open_or_build(tmp_path / "g", root, embedder=changed, registry=other)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(GalleryError, match="not a facefit gallery"):
        GalleryIndex.open_or_build(tmp_path / "notes", root, embedder=embedder, registry=registry)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
