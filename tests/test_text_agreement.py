"""Text agreement: parsing stated attributes, attribute probes, and their use in the loop."""

from __future__ import annotations

import numpy as np
import pytest

from facefit.datasets.attributes import describe
from facefit.errors import InputError
from facefit.text_agreement import (
    ATTRIBUTE_FEATURES,
    AttributeProbes,
    Probe,
    attribute_features,
    balanced_accuracy,
    fit_probe,
    parse_description,
    probe_labels,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a smiling young woman with wavy blond hair and bangs, wearing earrings",
         {"gender": "female", "smiling": True, "hair_color": "golden", "bald": False,
          "earrings": True}),
        ("a bald man with brown eyes, dark lips and brown skin", {"gender": "male", "bald": True}),
        ("A serious guy, dark brown hair", {"gender": "male", "smiling": False,
                                            "hair_color": "brown", "bald": False}),
        ("red-haired girl, no earrings", {"gender": "female", "hair_color": "red", "bald": False,
                                          "earrings": False}),
        ("a person with fair skin", {}),
        ("a man or a woman with black or brown hair", {}),  # contradictions say nothing
    ],
)  # fmt: skip
def test_parse_description_reads_what_the_text_states(text, expected):
    assert parse_description(text) == expected


def test_parse_reads_back_what_describe_writes():
    attrs = {"gender": "female", "smiling": True, "bald": False, "hair_color": "black"}
    labels = probe_labels(parse_description(describe(attrs)))
    assert labels == probe_labels(attrs)
    assert labels["female"] == 1 and labels["hair_black"] == 1 and labels["hair_brown"] == 0
    assert probe_labels({"wearing": ["glasses"]}) == {"earrings": 0}
    with pytest.raises(InputError, match="string"):
        parse_description(None)


def test_attribute_features_tell_unstated_from_denied():
    def stated(text):
        vector = attribute_features(parse_description(text))
        assert vector.dtype == np.float32 and vector.shape == (len(ATTRIBUTE_FEATURES),)
        return {n for n, v in zip(ATTRIBUTE_FEATURES, vector.tolist(), strict=True) if v}

    assert stated("a person") == set()
    assert stated("a serious woman, no earrings") == {"female", "smiling_not", "earrings_not"}
    assert stated("a bald man") == {"female_not", "bald"}
    assert stated("a girl with dark brown hair") == {"female", "bald_not", "hair_brown"}


def _toy_probes(dim=4):
    # female on axis 0, black hair on axis 1; a probe for smiling that is too weak to use
    return AttributeProbes(
        "toy",
        dim,
        {
            "female": Probe(np.array([4.0, 0, 0, 0], np.float32), 0.0, 0.9),
            "hair_black": Probe(np.array([0, 2.0, 0, 0], np.float32), -1.0, 0.8),
            "smiling": Probe(np.array([0, 0, 3.0, 0], np.float32), 0.0, 0.55),
        },
        {"note": "toy"},
    )


def test_agreement_is_the_mean_probability_of_the_stated_attributes(tmp_path):
    probes = _toy_probes()
    faces = np.array([[1, 1, 0, 0], [-1, 0, 0, 0]], np.float32)
    attrs = parse_description("a smiling woman with black hair")
    assert probes.scorable(attrs) == {"female": 1, "hair_black": 1}  # smiling probe too weak
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    expected = [(sig(4) + sig(1)) / 2, (sig(-4) + sig(-1)) / 2]
    assert probes.agreement(faces, attrs) == pytest.approx(expected, rel=1e-6)
    man = probes.agreement(faces, {"gender": "male"})
    assert man == pytest.approx([1 - sig(4), 1 - sig(-4)], rel=1e-5)
    assert probes.agreement(faces, {"smiling": True}) is None

    loaded = AttributeProbes.load(probes.save(tmp_path / "p.json"))
    assert loaded.agreement(faces, attrs) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        probes.predict(np.zeros((2, 3)))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not an attribute-probe file"):
        AttributeProbes.load(tmp_path / "bad.json")


def test_fit_probe_learns_a_separable_attribute():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.3
    x = rng.normal(size=(400, 8)).astype(np.float32)
    x[:, 3] += np.where(y, 2.5, -2.5)
    w, b = fit_probe(x[:300], y[:300])
    p = 1 / (1 + np.exp(-(x[300:] @ w + b)))
    assert balanced_accuracy(p, y[300:]) > 0.95
    assert balanced_accuracy(np.full(100, 0.9), y[300:]) == 0.5  # always "yes"
    with pytest.raises(InputError, match="both classes"):
        fit_probe(x, np.ones(400))


def test_shipped_sface_probes_load_and_say_how_accurate_they_are():
    probes = AttributeProbes.for_encoder("sface")
    assert probes is not None and probes.dim == 128
    assert {"female", "hair_black"} <= set(probes.usable())
    assert all(0.5 <= p.balanced_accuracy <= 1 for p in probes.probes.values())
    assert AttributeProbes.for_encoder("no-such-encoder") is None


def _pipeline_with_a_female_probe(tmp_path, monkeypatch):
    """A toy pipeline (1 round, 2 candidates) whose face encoder has one attribute probe,
    ``female``, saved where text agreement looks for it."""
    from facefit import text_agreement
    from facefit.pipeline import Pipeline
    from tests.pipeline_helpers import save_model, toy_config, toy_gallery, toy_registry

    registry = toy_registry()
    encoder = registry.create_face_encoder("tiny-face")
    probes = AttributeProbes(
        encoder.name,
        encoder.dim,
        {"female": Probe(np.linspace(-1, 1, encoder.dim).astype(np.float32), 0.1, 0.9)},
        {},
    )
    monkeypatch.setattr(text_agreement, "PROBES_DIR", tmp_path)
    probes.save(tmp_path / f"attribute_probes_{encoder.name}.json")
    model = save_model(tmp_path / "model")
    return Pipeline(
        toy_config(model, rounds=1, candidates=2), registry=registry, gallery=toy_gallery(registry)
    )


def test_the_loop_scores_text_when_a_probe_can_check_it(tmp_path, monkeypatch):
    from facefit.types import Evidence
    from tests.pipeline_helpers import toy_sketch

    pipeline = _pipeline_with_a_female_probe(tmp_path, monkeypatch)
    result = pipeline.run(Evidence(sketch=toy_sketch(), text="a young woman"))
    trace = result.rounds[0]
    assert any(n.startswith("text: scored on female") for n in trace.notes)
    for c in trace.candidates:
        assert 0 <= c.evidence_scores["text"] <= 1
    unscorable = pipeline.run(Evidence(sketch=toy_sketch(), text="wearing a hat"))
    assert any("states no attribute facefit can check" in n for n in unscorable.rounds[0].notes)
    assert all("text" not in c.evidence_scores for c in unscorable.candidates)


def test_several_descriptions_are_each_scored_and_recorded(tmp_path, monkeypatch):
    """Two witnesses who contradict each other: the text score is the mean of their
    agreements, and each description's own agreement is kept in the fusion's record."""
    from facefit.types import Evidence
    from tests.pipeline_helpers import toy_sketch

    pipeline = _pipeline_with_a_female_probe(tmp_path, monkeypatch)
    evidence = Evidence(sketch=toy_sketch(), text="a young woman", extra_texts=("a man",))
    result = pipeline.run(evidence)
    notes = result.rounds[0].notes
    assert any(n.startswith("text 1: scored on female") for n in notes)
    assert any(n.startswith("text 2: scored on female") for n in notes)
    for c in result.rounds[0].candidates:  # p(female) and 1 - p(female), averaged
        assert c.evidence_scores["text"] == pytest.approx(0.5, abs=1e-5)
    woman, man = result.provenance["fusion"]["texts"]
    assert woman["scored"] and man["scored"] and woman["agreement"]
    for match in result.matches:
        first, second = woman["agreement"][match.identity], man["agreement"][match.identity]
        # each identity's best photo per description: p(female) and 1 - p(female) of its
        # two photos, so the two agreements add up to at least 1 (the contradiction shows)
        assert first + second >= 1 - 1e-5 and first != second
        assert match.sources["text"] == pytest.approx((first + second) / 2, abs=1e-5)
