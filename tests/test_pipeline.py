"""The IdentiFace loop with a tiny random generator, weight-free encoders and a toy gallery."""

from __future__ import annotations

import numpy as np
import pytest

from facefit.errors import ConfigError, InputError, UnknownPluginError
from facefit.types import Evidence
from tests.generator_helpers import single_thread  # noqa: F401 (autouse)
from tests.pipeline_helpers import (
    save_model,
    toy_config,
    toy_gallery,
    toy_lq,
    toy_registry,
    toy_sketch,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def registry():
    return toy_registry()


def make(model_dir, registry, gallery=True, **settings):
    from facefit.pipeline import Pipeline

    return Pipeline(
        toy_config(model_dir, **settings),
        registry=registry,
        gallery=toy_gallery(registry) if gallery else None,
    )


EVIDENCE = Evidence(sketch=toy_sketch(), lq=toy_lq(), text="a man", allow_no_face=("lq",))


def test_loop_scores_candidates_and_ranks_identities(model_dir, registry):
    result = make(model_dir, registry, stop_when_stable=0).run(EVIDENCE)
    assert len(result.rounds) == 3
    for trace in result.rounds:
        assert len(trace.candidates) == 3
        for c in trace.candidates:
            assert set(c.evidence_scores) == {"sketch", "lq"}  # text is never guessed
            assert -1 <= c.evidence_scores["sketch"] <= 1 and 0 <= c.evidence_scores["lq"] <= 1
            assert c.matches and c.image.shape == (16, 16, 3)
    assert any("text: not scored" in n for n in result.rounds[0].notes)
    assert result.rounds[0].reference is None
    assert result.rounds[1].reference.startswith("candidate 0/")
    assert "gallery face of" in result.rounds[1].reference
    assert [m.rank for m in result.matches] == list(range(1, len(result.matches) + 1))
    assert len({c.seed for c in result.candidates}) == 3  # one seed per round


def test_fused_score_is_the_mean_over_rounds(model_dir, registry):
    result = make(model_dir, registry, stop_when_stable=0, top_k=6).run(EVIDENCE)
    for match in result.matches:  # k covers the whole gallery: every round score is exact
        per_round = [
            max(m.score for c in t.candidates for m in c.matches if m.identity == match.identity)
            for t in result.rounds
        ]
        assert match.score == pytest.approx(np.mean(per_round), abs=1e-5)


def test_stops_early_when_the_top_identity_is_stable(model_dir, registry):
    result = make(model_dir, registry, rounds=6, stop_when_stable=1).run(EVIDENCE)
    assert len(result.rounds) == 1 and "stable for 1 rounds" in result.provenance["stopped"]
    tops = [t.matches[0].identity for t in make(model_dir, registry, rounds=6).run(EVIDENCE).rounds]
    assert len(tops) < 6 or tops[-1] != tops[-2]
    if len(tops) < 6:
        assert tops[-1] == tops[-2]


def test_investigator_pick_changes_the_next_reference(model_dir, registry):
    from facefit.pipeline import Choice

    pipeline = make(model_dir, registry, rounds=2, stop_when_stable=0, gallery_reference_weight=0.0)
    auto = pipeline.run(EVIDENCE)
    best = max(auto.rounds[0].candidates, key=lambda c: c.consistency).index
    other = (best + 1) % 3
    seen = []

    def investigator(trace):
        seen.append(trace.round)
        return Choice(pick=other, reject=(best,)) if trace.round == 0 else None

    steered = pipeline.run(EVIDENCE, on_round=investigator)
    assert seen == [0, 1]
    assert steered.rounds[1].reference == f"investigator pick 0/{other}"
    assert steered.rounds[0].candidates[best].rejected
    assert any("investigator" in n for n in steered.rounds[0].notes)
    # round 0 is the same; round 1 was conditioned on another identity
    assert np.array_equal(auto.rounds[0].candidates[0].image, steered.rounds[0].candidates[0].image)
    assert not np.array_equal(
        auto.rounds[1].candidates[0].image, steered.rounds[1].candidates[0].image
    )
    accepted = pipeline.run(EVIDENCE, on_round=lambda t: Choice(accept=True))
    assert len(accepted.rounds) == 1 and "accepted" in accepted.provenance["stopped"]
    with pytest.raises(InputError, match="no candidate 7"):
        pipeline.run(EVIDENCE, on_round=lambda t: Choice(pick=7))


def test_same_seed_same_result(model_dir, registry):
    pipeline = make(model_dir, registry)
    a, b = pipeline.run(EVIDENCE), pipeline.run(EVIDENCE)
    assert a.matches == b.matches
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a.candidates, b.candidates))


def test_no_gallery_generates_without_ranking(model_dir, registry):
    result = make(model_dir, registry, gallery=False, rounds=2).run(Evidence(text="a woman"))
    assert result.matches == () and len(result.rounds) == 2
    assert result.rounds[0].candidates[0].evidence_scores == {}


def test_no_evidence(model_dir, registry):
    with pytest.raises(InputError, match="no evidence given"):
        make(model_dir, registry).run(Evidence())


def test_sketch_where_no_face_can_be_framed(model_dir, registry):
    blank = np.full((48, 48), 255, np.uint8)  # the toy detector finds nothing on a flat page
    with pytest.raises(InputError, match=r"blank"):
        make(model_dir, registry).run(Evidence(sketch=blank, allow_no_face="sketch"))
    wide = np.full((40, 160), 255, np.uint8)
    wide[20, 10:150] = 0
    from facefit.pipeline.evidence import frame_sketch

    class Nothing:
        def detect(self, image):
            return []

    with pytest.raises(InputError, match="aspect ratio"):
        frame_sketch(wide, Nothing(), 16, "wide.png", allow_fallback=True)
    with pytest.raises(InputError, match=r"framed\.png: no face detected.*--allow-no-face sketch"):
        frame_sketch(toy_sketch(), Nothing(), 16, "framed.png")
    aligned, check = frame_sketch(toy_sketch(), Nothing(), 16, "framed.png", allow_fallback=True)
    assert check.flagged and "fallback" in check.why and aligned.shape == (16, 16)


def test_gallery_built_with_another_encoder(model_dir, registry, tmp_path):
    from facefit.gallery import EncoderMismatchError, GalleryIndex
    from facefit.pipeline import Pipeline

    other = GalleryIndex.create(registry.create_face_encoder("pattern"), retriever="exact")
    other.add(np.eye(48, dtype=np.float32)[:2], ["a", "b"])
    with pytest.raises(EncoderMismatchError):
        Pipeline(toy_config(model_dir), registry=registry, gallery=other)
    other.save(tmp_path / "g")
    with pytest.raises(EncoderMismatchError, match="pattern"):
        Pipeline(toy_config(model_dir), registry=registry, gallery=tmp_path / "g")


def test_unknown_plugin_and_missing_gpu(model_dir, registry):
    from dataclasses import replace

    from facefit.config import ComponentSpec
    from facefit.pipeline import Pipeline

    config = toy_config(model_dir)
    bad = replace(config, components={**config.components, "sampler": ComponentSpec("nope")})
    with pytest.raises(ConfigError, match=r"unknown sampler 'nope'; known: .*ddim"):
        Pipeline(bad, registry=registry)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            Pipeline(config.replace_settings(device="cuda"), registry=registry)
    with pytest.raises(UnknownPluginError):
        registry.entry("sampler", "nope")


def test_candidate_crops_line_up_with_the_encoder_template():
    """A 64-px crop resized to 112 is the 112-px crop: template(size) scales with the side."""
    from facefit.imaging.faces import align_landmarks, template
    from facefit.pipeline.loop import _resize

    rng = np.random.default_rng(0)
    image = (rng.random((200, 180, 3)) * 255).astype(np.uint8)
    import cv2

    image = cv2.GaussianBlur(image, (0, 0), 4)
    landmarks = template(112) * 1.3 + np.float32([20, 30])
    small = align_landmarks(image, landmarks, 64)
    large = align_landmarks(image, landmarks, 112)
    difference = np.abs(_resize(small[None], 112)[0].astype(float) - large.astype(float))
    assert difference[8:-8, 8:-8].mean() < 3.0


def test_evaluation_generator_contract(model_dir, registry):
    from types import SimpleNamespace

    from facefit.pipeline import evaluation_generator

    gallery = toy_gallery(registry)
    context = SimpleNamespace(
        config=toy_config(model_dir),
        encoder="tiny-face",
        registry=registry,
        gallery_index=lambda encoder: gallery,
    )
    generate = evaluation_generator(context)
    result = generate(EVIDENCE, 1)
    assert len(result.rounds) == 1
    assert len(result.matches) == gallery.num_identities  # every identity scored
