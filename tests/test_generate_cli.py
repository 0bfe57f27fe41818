"""``facefit generate``: outputs, provenance replay, interactive choice, errors, batch resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facefit.cli import main
from facefit.files import TEMP_MARK
from tests.generator_helpers import single_thread  # noqa: F401 (autouse)
from tests.pipeline_helpers import save_model, toy_gallery, toy_lq, toy_registry, toy_sketch


@pytest.fixture(scope="module")
def registry():
    return toy_registry()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, registry):
    """A model, a saved toy gallery, a config file and evidence files."""
    root = tmp_path_factory.mktemp("generate")
    model = save_model(root / "model")
    gallery = toy_gallery(registry)
    gallery.save(root / "gallery")
    config = root / "pipeline.toml"
    config.write_text(
        f'[pipeline]\nmodel = "{model}"\nrounds = 3\ncandidates = 2\nsteps = 2\n'
        'stop_when_stable = 0\n\n[face_detector]\nplugin = "blob"\n\n'
        '[face_encoder]\nplugin = "tiny-face"\n'
    )
    Image.fromarray(toy_sketch()).save(root / "sketch.png")
    Image.fromarray(toy_lq()).save(root / "lq.png")  # no face: used only where allowed
    Image.fromarray(np.full((48, 48), 255, np.uint8)).save(root / "blank.png")
    return root


def run(registry, *args, input=None):
    result = CliRunner().invoke(
        main, [str(a) for a in args], obj={"registry": registry}, input=input
    )
    assert "Traceback" not in result.output, result.output
    return result


def base(setup):
    return ["generate", "--config", setup / "pipeline.toml", "-g", setup / "gallery"]


def test_outputs_and_provenance_reproduce_the_result(registry, setup, tmp_path):
    from facefit.files import sha256_file

    out = tmp_path / "run"
    args = [*base(setup), "--sketch", setup / "sketch.png", "--lq", setup / "lq.png"]
    args += ["--allow-no-face", "lq"]
    result = run(registry, *args, "--text", "a man with a beard", "--seed", "5", "--out", out)
    assert result.exit_code == 0, result.output
    assert "ranked identities" in result.output and "contact_sheet.png" in result.output
    assert "CAUTION: evidence used without a verified face" in result.output
    assert sorted(p.name for p in (out / "round2").iterdir()) == ["cand0.png", "cand1.png"]
    assert Image.open(out / "contact_sheet.png").size[0] > 0
    data = json.loads((out / "result.json").read_text())
    assert data["matches"][0]["rank"] == 1 and len(data["rounds"]) == 3
    assert data["confidence"] == "low" and data["caution"][0].startswith("lq: CAUTION")
    assert [(e["modality"], e["use"]) for e in data["evidence"]] == [
        ("sketch", "detected"),
        ("lq", "as given"),
    ]
    candidate = data["rounds"][0]["candidates"][0]
    assert set(candidate["evidence_scores"]) == {"sketch", "lq"} and candidate["matches"]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["inputs"]["sketch"]["sha256"] == sha256_file(setup / "sketch.png")
    assert prov["gallery"]["manifest_sha256"] == sha256_file(setup / "gallery" / "manifest.json")
    assert "config.json" in prov["model"]["files"]
    assert prov["plugins"]["sampler:ddpm"]["package"] == "facefit"
    assert prov["seeds"]["seed"] == 5 and len(prov["seeds"]["rounds"]) == 3
    assert prov["timings"]["loop"] > 0 and prov["facefit"]
    assert prov["text"] == "a man with a beard"
    assert prov["allow_no_face"] == ["lq"] and prov["evidence"][1]["flagged"] is True

    again = tmp_path / "again"
    result = run(registry, "generate", "--replay", out / "provenance.json", "--out", again)
    assert result.exit_code == 0, result.output
    assert (again / "result.json").read_bytes() == (out / "result.json").read_bytes()
    other_seed = tmp_path / "other"
    run(registry, *args, "--text", "a man with a beard", "--seed", "6", "--out", other_seed)
    assert (other_seed / "result.json").read_bytes() != (out / "result.json").read_bytes()


def test_interactive_pick_reject_accept(registry, setup, tmp_path):
    out = tmp_path / "interactive"
    answers = "banana\npick 1 reject 0\naccept\n"
    result = run(
        registry,
        *base(setup),
        "--sketch",
        setup / "sketch.png",
        "--interactive",
        "--out",
        out,
        input=answers,
    )
    assert result.exit_code == 0, result.output
    assert "cannot read 'banana'" in result.output
    data = json.loads((out / "result.json").read_text())
    assert len(data["rounds"]) == 2 and "accepted round 1" in data["stopped"]
    assert data["rounds"][0]["candidates"][0]["rejected"] is True
    assert data["rounds"][1]["reference"].startswith("investigator pick 0/1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no evidence given"),
        (["--sketch", "blank.png"], "blank.png: the sketch is blank"),
        (["--lq", "lq.png"], "lq.png: a face was found"),
        (["--sketch", "sketch.png", "--device", "cuda"], "no CUDA GPU"),
    ],
)
def test_errors_are_one_line(registry, setup, tmp_path, args, message):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    args = [setup / a if a.endswith(".png") else a for a in args]
    result = run(registry, *base(setup), *args, "--out", tmp_path / "x")
    assert result.exit_code == 2 and message in result.output
    assert result.output.count("\n") == 1


def test_other_encoder_gallery_and_unknown_plugin(registry, setup, tmp_path):
    from facefit.gallery import GalleryIndex

    other = GalleryIndex.create(registry.create_face_encoder("pattern"), retriever="exact")
    other.add(np.eye(48, dtype=np.float32)[:2], ["a", "b"])
    other.save(tmp_path / "other")
    sketch = ["--sketch", setup / "sketch.png", "--out", tmp_path / "x"]
    result = run(
        registry, "generate", "--config", setup / "pipeline.toml", "-g", tmp_path / "other", *sketch
    )
    assert result.exit_code == 2 and "pattern" in result.output and "tiny-face" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text((setup / "pipeline.toml").read_text() + '\n[sampler]\nplugin = "nope"\n')
    result = run(registry, "generate", "--config", bad, *sketch)
    assert result.exit_code == 2 and "unknown sampler 'nope'" in result.output


def test_batch_resumes_after_an_interruption(registry, setup, tmp_path):
    from facefit.config import load_config
    from facefit.pipeline import Pipeline
    from facefit.pipeline.batch import read_manifest, run_batch

    manifest = setup / "probes.csv"
    manifest.write_text(
        "id,sketch,lq,text\np1,sketch.png,,a man\np2,,lq.png,\np3,sketch.png,lq.png,a woman\n"
    )
    out = tmp_path / "batch"
    pipeline = Pipeline(
        load_config(setup / "pipeline.toml"), registry=registry, gallery=setup / "gallery"
    )

    def interrupt(probe_id):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(pipeline, read_manifest(manifest), out, progress=False, after_probe=interrupt)
    first = (out / "p1" / "result.json").stat().st_mtime_ns
    assert not (out / "p2").exists()
    (out / f".p2{TEMP_MARK}999-0a1b").mkdir()  # what a kill while writing leaves behind
    (out / ".p3.partial-999").mkdir()  # and what one of an earlier version left

    refused = run(registry, *base(setup), "--manifest", manifest, "--out", out)
    assert refused.exit_code == 2 and "--resume" in refused.output and "--force" in refused.output
    resume = ["--manifest", manifest, "--out", out, "--resume", "--allow-no-face", "lq"]
    result = run(registry, *base(setup), *resume)
    assert result.exit_code == 0, result.output
    assert "2 probes done, 1 already complete, 0 failed" in result.output
    assert (out / "p1" / "result.json").stat().st_mtime_ns == first
    assert all((out / p / "provenance.json").is_file() for p in ("p1", "p2", "p3"))
    assert not list(out.glob(f".*{TEMP_MARK}*")) and not list(out.glob(".*partial*"))
    result = run(registry, *base(setup), *resume)
    assert "0 probes done, 3 already complete" in result.output
    result = run(registry, *base(setup), *resume[:4], "--force", "--allow-no-face", "lq")
    assert "3 probes done, 0 already complete" in result.output
    assert (out / "p1" / "result.json").stat().st_mtime_ns != first


def test_demo_refuses_without_a_default_model(registry, monkeypatch, tmp_path):
    import facefit.generator.loading as loading

    monkeypatch.setattr(loading, "DEFAULT_MODEL_DIR", tmp_path / "none")
    result = run(registry, "demo", "--out", tmp_path / "demo")
    assert result.exit_code == 2
    assert "the demo needs the default generator model, and none is installed" in result.output
    assert not (tmp_path / "demo").exists()


def test_demo_data_is_bundled_and_from_the_development_split():
    from facefit.pipeline.demo import DEMO_DATA, demo_probes

    probes = demo_probes()
    assert len(probes) >= 3 and all(p.text for p in probes)
    gallery = json.loads((DEMO_DATA / "gallery.json").read_text())["identities"]
    assert {p.id for p in probes} <= set(gallery) and len(gallery) >= 20
    assert sum(f.stat().st_size for f in DEMO_DATA.rglob("*") if f.is_file()) < 400_000
    assert "FS2K" in (DEMO_DATA / "SOURCES.md").read_text()


def test_demo_pairs_are_in_the_development_split(shared_data):
    from facefit.datasets.splits import fs2k_split
    from facefit.pipeline.demo import DEMO_DATA

    dev = set(fs2k_split(shared_data).dev)
    gallery = json.loads((DEMO_DATA / "gallery.json").read_text())["identities"]
    assert set(gallery) <= dev
