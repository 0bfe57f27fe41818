"""Fusion in the loop: several witnesses from the CLI to provenance.json, calibrated
rankings in result.json, and "no likely match" on a gallery without the suspect."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from facefit.cli import main
from tests.generator_helpers import single_thread  # noqa: F401 (autouse)
from tests.pipeline_helpers import save_model, toy_gallery, toy_lq, toy_registry, toy_sketch

TOY_PROFILE = {
    "format": "facefit-fusion/1",
    "fitted": {"note": "hand-made for the toy pipeline's encoders"},
    "profiles": [
        {
            "encoders": {"sketch": "tiny-face", "lq": "tiny-face@8px", "generated": "tiny-face"},
            "weights": {"sketch": 5.0, "lq": 1.0, "generated": 5.0},
            "log_lr_offset": -3.0,
        },
        {
            "encoders": {"sketch": "tiny-face", "lq": "tiny-face@8px"},
            "weights": {"sketch": 5.0, "lq": 1.0},
            "log_lr_offset": -2.0,
        },
    ],
}


@pytest.fixture(scope="module")
def registry():
    return toy_registry()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, registry):
    root = tmp_path_factory.mktemp("fusion")
    model = save_model(root / "model")
    toy_gallery(registry).save(root / "gallery")
    (root / "pipeline.toml").write_text(
        f'[pipeline]\nmodel = "{model}"\nrounds = 2\ncandidates = 2\nsteps = 2\n'
        'stop_when_stable = 0\n\n[face_detector]\nplugin = "blob"\n\n'
        '[face_encoder]\nplugin = "tiny-face"\n'
    )
    for n in (0, 1):
        Image.fromarray(toy_sketch(seed=n)).save(root / f"sketch{n}.png")
        Image.fromarray(toy_lq(seed=n)).save(root / f"lq{n}.png")
    (root / "weights.json").write_text(json.dumps(TOY_PROFILE))
    return root


def run(registry, *args):
    result = CliRunner().invoke(main, [str(a) for a in args], obj={"registry": registry})
    assert "Traceback" not in result.output, result.output
    return result


def evidence_args(setup, sketches=2):
    args = ["generate", "--config", setup / "pipeline.toml", "-g", setup / "gallery"]
    for n in range(sketches):
        args += ["--sketch", setup / f"sketch{n}.png"]
    args += ["--lq", setup / "lq0.png", "--lq", setup / "lq1.png", "--allow-no-face", "lq"]
    return [*args, "--fusion-weights", setup / "weights.json"]


def test_several_witnesses_flow_from_the_flags_to_provenance(registry, setup, tmp_path):
    from facefit.pipeline.provenance import sha256_file

    out = tmp_path / "run"
    result = run(registry, *evidence_args(setup), "--out", out)
    assert result.exit_code == 0, result.output
    prov = json.loads((out / "provenance.json").read_text())
    assert set(prov["inputs"]) == {"sketch", "sketch.2", "lq", "lq.2"}
    assert prov["inputs"]["sketch.2"]["sha256"] == sha256_file(setup / "sketch1.png")
    assert prov["inputs"]["lq.2"]["sha256"] == sha256_file(setup / "lq1.png")
    assert [e["modality"] for e in prov["evidence"]] == ["sketch", "sketch", "lq", "lq"]
    assert prov["evidence"][1]["source"].endswith("sketch1.png")
    assert prov["fusion"]["sha256"] == sha256_file(setup / "weights.json")
    assert prov["fusion"]["profile"] == "sketch@tiny-face+lq@tiny-face@8px+generated@tiny-face"

    data = json.loads((out / "result.json").read_text())
    top = data["matches"][0]
    assert set(top["sources"]) == {"sketch", "lq", "generated"} and 0 < top["probability"] <= 1
    # the raw score is the documented weighted sum of the sources
    expected = 5 * top["sources"]["sketch"] + top["sources"]["lq"] + 5 * top["sources"]["generated"]
    assert top["score"] == pytest.approx(expected, abs=1e-5)
    # each round shows what it added to the fused ranking, starting from the evidence alone
    assert data["direct_matches"] and data["direct_matches"][0]["probability"] is not None
    assert set(data["rounds"][1]["added"]) >= {"top", "top_probability", "top_changed"}
    assert [m["identity"] for m in data["rounds"][-1]["fused"]] == [
        m["identity"] for m in data["matches"]
    ]

    # the two sketches are both matched: one sketch alone gives other direct scores
    single = tmp_path / "single"
    run(registry, *evidence_args(setup, sketches=1), "--out", single)
    one = json.loads((single / "result.json").read_text())["direct_matches"]
    assert {m["identity"]: m["sources"]["sketch"] for m in one} != {
        m["identity"]: m["sources"]["sketch"] for m in data["direct_matches"]
    }

    again = tmp_path / "again"
    result = run(
        registry,
        "generate",
        "--replay",
        out / "provenance.json",
        "--out",
        again,
        "--fusion-weights",
        setup / "weights.json",
    )
    assert result.exit_code == 0, result.output
    assert (again / "result.json").read_bytes() == (out / "result.json").read_bytes()


def test_no_likely_match_is_said_in_the_output_and_the_sheet(registry, setup, tmp_path):
    out = tmp_path / "nomatch"
    result = run(registry, *evidence_args(setup), "--no-match-threshold", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert "NO LIKELY MATCH" in result.output
    data = json.loads((out / "result.json").read_text())
    assert data["no_likely_match"] is True and data["fusion"]["no_match_threshold"] == 1.0
    assert Image.open(out / "contact_sheet.png").size[1] > 0
    likely = tmp_path / "likely"
    run(registry, *evidence_args(setup), "--no-match-threshold", "0", "--out", likely)
    assert json.loads((likely / "result.json").read_text())["no_likely_match"] is False


def test_a_manifest_lists_several_sketches(tmp_path, setup):
    from facefit.pipeline.batch import read_manifest

    manifest = tmp_path / "probes.csv"
    manifest.write_text(
        f"id,sketch,lq\np1,{setup / 'sketch0.png'};{setup / 'sketch1.png'},{setup / 'lq0.png'}\n"
    )
    (probe,) = read_manifest(manifest)
    assert probe.sketch.endswith("sketch0.png") and probe.extra_sketches[0].endswith("sketch1.png")
    assert set(probe.paths()) == {"sketch", "sketch.2", "lq"}


def test_no_likely_match_on_a_gallery_without_the_suspect(registry, setup):
    """Hand-made weights: the suspect's own drawing enrolled is a near-certain match;
    without it every identity is unlikely, and the result says so."""
    from facefit.fusion import FusionModel, Profile
    from facefit.imaging.faces import FaceEmbedder
    from facefit.pipeline import Pipeline
    from facefit.types import Evidence
    from tests.pipeline_helpers import toy_config

    config = toy_config(setup / "model", rounds=1, candidates=1, steps=2)
    model = FusionModel([Profile({"sketch": "tiny-face"}, {"sketch": 20.0}, -10.0)])
    sketch = toy_sketch(seed=0)
    evidence = Evidence(sketch=sketch)

    def run_on(with_suspect: bool):
        gallery = toy_gallery(registry)
        if with_suspect:
            embedder = FaceEmbedder(
                registry.create_face_detector("blob"), registry.create_face_encoder("tiny-face")
            )
            crop = embedder.locate(sketch, sketch_fallback=True).crop
            gallery.add(embedder.embed_aligned(crop[None]), "suspect", sources=["drawn"])
        pipeline = Pipeline(config, registry=registry, gallery=gallery, fusion=model)
        return pipeline.run(evidence)

    found, missing = run_on(True), run_on(False)
    assert found.matches[0].identity == "suspect" and found.matches[0].probability > 0.9
    assert not found.no_likely_match
    assert "suspect" not in [m.identity for m in missing.matches]
    assert missing.no_likely_match
    assert max(m.probability for m in missing.matches) < 0.2
    # generated scores have no fitted weight in this model: the run says so
    assert any("no fitted weight for generated" in n for n in missing.provenance["fusion"]["notes"])


def test_the_demo_ranks_with_the_shipped_weights():
    """Real faces: the bundled FS2K development sketches and gallery, SFace, the shipped
    generator and weights. Where a sketch finds its person, removing that person from the
    gallery lowers the best probability (the demo gallery holds only 24 photos, so an
    impostor may still look likely; see docs/identification.md)."""
    from facefit.config import PipelineConfig
    from facefit.errors import FacefitError
    from facefit.pipeline import Pipeline
    from facefit.pipeline.demo import demo_gallery, demo_probes, require_default_model
    from facefit.registry import Registry
    from facefit.types import Evidence

    try:
        require_default_model()
        registry = Registry.load()
        encoder = registry.create_face_encoder("sface")
    except FacefitError as exc:  # a model is not installed here
        pytest.skip(f"needs the shipped generator and face models: {exc}")
    config = PipelineConfig().replace_settings(rounds=1, candidates=1, steps=2)
    probe = demo_probes()[0]
    evidence = Evidence.from_files(sketch=probe.sketch)
    results = []
    for without in (None, probe.id):
        gallery = demo_gallery(encoder, registry)
        if without is not None:
            gallery.remove_identity(without)
        results.append(Pipeline(config, registry=registry, gallery=gallery).run(evidence))
    found, missing = results
    assert found.matches[0].identity == probe.id
    assert found.matches[0].probability > missing.matches[0].probability
    assert found.provenance["fusion"]["profile"].startswith("sketch@")


def test_several_descriptions_flow_from_the_flags_to_provenance(registry, setup, tmp_path):
    texts = ["a young man with black hair", "an old woman, bald; glasses"]
    out = tmp_path / "texts"
    args = evidence_args(setup, sketches=1)
    result = run(registry, *args, "--text", texts[0], "--text", f"  {texts[1]} ", "--out", out)
    assert result.exit_code == 0, result.output
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["texts"] == texts and prov["text"] == texts[0]
    # each description has its own record in the fusion's record
    parts = prov["fusion"]["texts"]
    assert [p["description"] for p in parts] == [1, 2]
    data = json.loads((out / "result.json").read_text())
    assert data["fusion"]["texts"] == parts
    # both descriptions condition the generator: one each of the round's two candidates
    notes = data["rounds"][0]["notes"]
    assert "text: candidates 0-0 on description 1, 1-1 on description 2" in notes
    assert any(n.startswith("text 2:") for n in notes)

    # the second description changes the candidates its block was conditioned on
    one = tmp_path / "one"
    result = run(registry, *args, "--text", texts[0], "--out", one)
    assert result.exit_code == 0, result.output
    single = json.loads((one / "provenance.json").read_text())
    assert single["texts"] == [texts[0]] and "texts" in single["fusion"]
    assert (out / "result.json").read_bytes() != (one / "result.json").read_bytes()

    # fewer candidates than descriptions: the first is used and the rest are said unused
    few = tmp_path / "few"
    texts_args = ["--text", texts[0], "--text", texts[1]]
    result = run(registry, *args, *texts_args, "--candidates", "1", "--out", few)
    assert result.exit_code == 0, result.output
    notes = json.loads((few / "result.json").read_text())["rounds"][1]["notes"]
    assert (
        "text: candidates 0-0 on description 1 (1 description(s) condition no candidate: "
        "too few candidates)" in notes
    )

    again = tmp_path / "again"
    weights = ["--fusion-weights", setup / "weights.json"]
    result = run(
        registry, "generate", "--replay", out / "provenance.json", "--out", again, *weights
    )
    assert result.exit_code == 0, result.output
    assert (again / "result.json").read_bytes() == (out / "result.json").read_bytes()


def test_a_manifest_lists_several_descriptions(tmp_path, setup):
    from facefit.errors import InputError
    from facefit.pipeline.batch import read_manifest

    manifest = tmp_path / "probes.csv"
    manifest.write_text(
        "id,sketch,text,text.2,text.3\n"
        f'p1,{setup / "sketch0.png"},"a man; tall",,a bald man\n'
        f"p2,{setup / 'sketch1.png'},a woman,,\n"
        "p3,,,a man with a beard,\n"
    )
    p1, p2, p3 = read_manifest(manifest)
    assert p1.texts == ["a man; tall", "a bald man"] and list(p1.load().texts) == p1.texts
    assert p2.text == "a woman" and p2.extra_texts == ()  # a single description still works
    assert p3.load().texts == ("a man with a beard",)
    manifest.write_text(f"id,sketch,text.1\np1,{setup / 'sketch0.png'},a man\n")
    with pytest.raises(InputError, match=r"text\.2, text\.3"):
        read_manifest(manifest)


def test_evidence_keeps_every_description_in_order():
    from facefit.errors import InputError
    from facefit.types import EMPTY_TEXT_NOTE, Evidence

    evidence = Evidence(text="  ", extra_texts=("a man", "a  woman"))
    assert evidence.texts == ("a man", "a woman") and EMPTY_TEXT_NOTE in evidence.notes
    assert Evidence(text="a man").texts == ("a man",) and Evidence().texts == ()
    with pytest.raises(InputError, match="text 2"):
        Evidence(text="a man", extra_texts=("x" * 3000,))
