"""Generator gates (facefit.generator.gates) and the attribute judge, on tiny models and made-up data.

No shared data is needed: the development set here is random faces at 16 px, the
encoders are the toy plugins of tests/plugins/generator_toys.py, and the judge is
trained on made-up vectors. The real gates run with scripts/generator_gates.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facefit.attribute_judge import (
    HEADS,
    AttributeJudge,
    accuracy,
    fit_softmax,
    judge_labels,
    train_judge,
)
from facefit.errors import InputError
from facefit.generator.gates import (
    GATES,
    DevData,
    FaceSet,
    Fs2kDev,
    GateSettings,
    gates_grid,
    markdown,
    run_gates,
    write_report,
)
from facefit.generator.gates.devset import spread
from facefit.generator.gates.measure import celeba_probes, identity_rank1, partners
from tests.generator_helpers import single_thread, tiny_generator, toy_registry  # noqa: F401

V2 = {"conditioning": "adanorm", "reference_image": True, "prediction_type": "v_prediction"}
SENTENCES = [
    "a man with black hair",
    "a woman with golden hair",
    "a smiling man with brown hair",
    "a woman with red hair",
    "an older man with golden hair",
    "a young woman with black hair",
]
LABELS = [
    {"gender": "male", "hair_color": "black"},
    {"gender": "female", "hair_color": "golden"},
    {"gender": "male", "hair_color": "brown"},
    {"gender": "female", "hair_color": "red"},
    {"gender": "male", "hair_color": "golden"},
    {"gender": "female"},
]


# -- made-up development data -----------------------------------------------------------------


def _faces(rng, n: int, size: int = 16) -> np.ndarray:
    """Smooth random colour faces (so the toy encoder's quadrant means differ)."""
    small = rng.integers(0, 256, (n, 4, 4, 3)).astype(np.uint8)
    return np.repeat(np.repeat(small, size // 4, axis=1), size // 4, axis=2)


def _dev_data() -> DevData:
    rng = np.random.default_rng(0)
    n = len(SENTENCES)
    photos = FaceSet(
        tuple(f"pair{i}" for i in range(n)),
        ("p0", "p1", "p2", "p3", "p4", "p4"),  # the last two pairs show one person
        {16: _faces(rng, n)},
    )
    fs2k = Fs2kDev(
        photos,
        rng.integers(0, 256, (n, 16, 16)).astype(np.uint8),
        (0, 1, 2, 0, 1, 2),
        tuple(SENTENCES),
        tuple(LABELS),
    )
    people = [f"c{k}" for k in range(4) for _ in range(3)]
    celeba = FaceSet(
        tuple(f"{p}_{k}.jpg" for k, p in enumerate(people)),
        tuple(people),
        {16: _faces(rng, len(people))},
    )
    return DevData(fs2k, celeba, {"fs2k_dev_fingerprint": "f" * 64, "skipped": []})


def _toy_judge(registry) -> AttributeJudge:
    """A judge on the toy face encoder, trained on made-up faces and labels."""
    rng = np.random.default_rng(1)
    faces = _faces(rng, 40)
    encoder = registry.create("face_encoder", "tiny-face")
    vectors = encoder.embed_aligned(faces)
    labels = [
        {"gender": HEADS["gender"][k % 2], "hair_color": HEADS["hair_color"][k % 4]}
        for k in range(40)
    ]
    return train_judge(
        vectors, labels, [f"g{k}" for k in range(40)], encoder="tiny-face", crop_size=16, folds=2
    )


def _influential(model):
    """The zero-initialised global path made live, so identity and text reach the network."""
    torch.manual_seed(3)
    layer = model.denoiser.unet.class_embedding.linear_2
    torch.nn.init.normal_(layer.weight, std=0.5)
    return model


@pytest.fixture(scope="module")
def gates_report():
    registry = toy_registry()
    data = _dev_data()
    live = _influential(tiny_generator(**V2))
    deaf = _influential(tiny_generator(**V2))
    with torch.no_grad():  # this model cannot hear the text: its projection is cut
        deaf.text_proj[-1].weight.zero_()
        deaf.text_proj[-1].bias.zero_()
    old = tiny_generator()  # cross-attention, no reference image (like the shipped default)
    encoder = registry.create("face_encoder", "tiny-face")
    settings = GateSettings(steps=3, batch_size=4, guidance=3.0)
    report = run_gates(
        [("live", "tiny", live), ("deaf", "tiny", deaf), ("old", "tiny", old)],
        data,
        settings,
        judge=_toy_judge(registry),
        registry=registry,
        grader=encoder,
        filter_encoder=encoder,
        progress=False,
    )
    return report, data, registry, (live, deaf, old), settings


# -- gates --------------------------------------------------------------------------------------


def test_report_has_every_gate_for_every_model_with_targets_and_verdicts(gates_report):
    report = gates_report[0]
    assert [m["name"] for m in report["models"]] == ["live", "deaf", "old"]
    for model in report["models"]:
        assert set(model["gates"]) == set(GATES)
        for gate in GATES:
            assert isinstance(model["gates"][gate]["pass"], bool)
        assert model["pass"] == all(model["gates"][g]["pass"] for g in GATES)
        influence = model["gates"]["1_influence"]
        for cond in ("identity", "text"):
            assert influence[cond]["target"] == 12.0
            assert set(influence[cond]["x0"]) == {"950", "800", "500"}
            assert influence[cond]["n"] == 6
        text = model["gates"]["2_text_only"]
        assert text["gender"]["agreement"]["n"] == 6
        assert text["hair_color"]["agreement"]["n"] == 5  # one sentence states no hair colour
        assert model["gates"]["3_identity_only"]["identities"] == 4
        sketch = model["gates"]["4_reference_sketch"]
        assert sketch["filter_pass"]["n"] == 18  # 6 pairs in 3 styles
        assert set(sketch["per_style"]) == {"0", "1", "2"}
    refs = report["references"]
    assert refs["artist_sketches"]["rank1"]["n"] == 6
    assert set(refs["judge_real_accuracy"]) == {"gender", "hair_color"}
    json.dumps(report)  # JSON-ready as it is


def test_a_model_that_ignores_the_text_has_no_text_influence(gates_report):
    live, deaf = gates_report[0]["models"][:2]
    ignored = deaf["gates"]["1_influence"]["text"]
    assert ignored["samples"] == 0.0
    assert all(v == 0.0 for v in ignored["x0"].values())
    assert ignored["pass"] is False
    heard = live["gates"]["1_influence"]["text"]
    assert heard["samples"] > 0.5
    assert max(heard["x0"].values()) > 0.0
    # the rest of the deaf model still listens: identity and the reference image move it
    assert deaf["gates"]["1_influence"]["identity"]["samples"] > 0.5
    assert deaf["gates"]["1_influence"]["reference"]["samples"] > 0.5


def test_a_model_without_a_reference_image_gets_na_and_fails_gate_1(gates_report):
    old = gates_report[0]["models"][2]
    reference = old["gates"]["1_influence"]["reference"]
    assert "reference image" in reference["na"]
    assert old["gates"]["1_influence"]["pass"] is False
    assert old["gates"]["4_reference_sketch"]["reference_image_used"] is False


def test_same_evidence_and_seeds_give_the_same_faces(gates_report):
    from facefit.generator.gates import GateRunner

    _, _, registry, (live, _, _), settings = gates_report
    runner = GateRunner(live, settings, registry=registry)
    evidence = [runner.conditions(text=s) for s in SENTENCES[:3]]
    first, second = runner.sample(evidence), runner.sample(evidence)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (3, 16, 16, 3)


def test_markdown_and_files(gates_report, tmp_path):
    report = {"command": "python scripts/generator_gates.py …", "date": "d", "machine": "m"}
    report.update(gates_report[0])
    text = markdown(report)
    for word in ("`live`", "`deaf`", "`old`", "PASS", "FAIL", "n/a", "≥ 12/255", "artists'"):
        assert word in text, word
    paths = write_report(report, tmp_path / "gates")
    assert [p.name for p in paths] == ["gates.json", "gates.md"]
    assert json.loads(paths[0].read_text())["models"][0]["name"] == "live"
    with pytest.raises(InputError, match="--force"):
        write_report(report, tmp_path / "gates")
    write_report(report, tmp_path / "gates", force=True)


def test_grid_has_a_block_per_model(gates_report, tmp_path):
    from PIL import Image

    from facefit.generator.gates import GateRunner

    _, data, registry, (live, _, old), settings = gates_report
    runners = [
        (n, GateRunner(m, settings, registry=registry)) for n, m in (("a", live), ("b", old))
    ]
    path = gates_grid(runners, data, tmp_path / "grid.png", scale=2)
    image = np.asarray(Image.open(path))
    # per model: a header of half a row, then 4 rows (descriptions, identity, 2 × sketch) of 32 px
    assert image.shape[0] == 2 * (16 + 4 * 32)
    assert image.shape[1] == 150 + 7 * 32


# -- pieces -------------------------------------------------------------------------------------


def test_identity_rank1_excludes_the_probe_photo_and_counts_ties_against():
    gallery = np.eye(3, dtype=np.float32)
    persons = ["a", "a", "b"]
    probe = np.array([[1.0, 0.0, 0.0]], np.float32)
    assert identity_rank1(probe, gallery, persons, ["a"]).tolist() == [True]
    # without its own photo (row 0) the probe matches nothing of "a" better than "b"
    assert identity_rank1(probe, gallery, persons, ["a"], [0]).tolist() == [False]
    tie = np.array([[0.0, 0.5, 0.5]], np.float32)
    assert identity_rank1(tie, gallery, persons, ["a"]).tolist() == [False]


def test_partners_are_other_persons_with_other_sentences():
    persons = ["a", "a", "b", "c"]
    sentences = ["x", "y", "x", "z"]
    chosen = partners(persons, sentences, seed=0)
    for i, j in enumerate(chosen):
        assert persons[j] != persons[i]
        assert sentences[j] != sentences[i]
    with pytest.raises(InputError, match="two persons"):
        partners(["a", "a"], ["x", "y"])


def test_celeba_probes_round_robin_over_persons_with_a_second_photo():
    faces = FaceSet(("1", "2", "3", "4", "5", "6"), ("a", "a", "a", "b", "b", "c"), {})
    assert celeba_probes(faces, 2, None) == [0, 3, 1, 4]  # c has one photo: not a probe
    assert celeba_probes(faces, 0, 3) == [0, 3, 1]


def test_spread_takes_items_across_the_split():
    assert spread(10, None) == list(range(10))
    assert spread(10, 3) == [0, 4, 9]
    with pytest.raises(InputError):
        spread(10, 0)


# -- the attribute judge --------------------------------------------------------------------------


def _clusters(rng, n: int):
    """Made-up descriptors: gender moves the first axis, hair colour the next four."""
    genders = rng.integers(0, 2, n)
    hair = rng.integers(0, 4, n)
    x = rng.normal(0, 1, (n, 16)).astype(np.float32)
    x[:, 0] += 3 * (2 * genders - 1)
    x[np.arange(n), 1 + hair] += 4
    labels = [
        {"gender": HEADS["gender"][g], "hair_color": HEADS["hair_color"][h]}
        for g, h in zip(genders, hair)
    ]
    return x, labels


def test_judge_learns_made_up_attributes_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x, labels = _clusters(rng, 400)
    labels[0] = {"gender": labels[0]["gender"]}  # a photo with no hair label still trains gender
    judge = train_judge(x, labels, [f"p{k // 2}" for k in range(400)], encoder="toy", crop_size=64)
    assert set(judge.heads) == {"gender", "hair_color"}
    x_test, truth = _clusters(np.random.default_rng(1), 200)
    predicted = judge.predict(x_test)
    for head in judge.heads:
        assert accuracy(predicted[head], [t[head] for t in truth]) > 0.9, head
    again = AttributeJudge.load(judge.save(tmp_path / "judge.json"))
    assert again.predict(x_test) == predicted
    assert again.crop_size == 64 and again.encoder == "toy"


def test_judge_cannot_learn_from_labels_that_carry_nothing():
    rng = np.random.default_rng(0)
    x, labels = _clusters(rng, 400)
    shuffled = [labels[k] for k in rng.permutation(400)]  # labels unrelated to the vectors
    judge = train_judge(x, shuffled, [f"p{k}" for k in range(400)], encoder="toy", crop_size=64)
    x_test, truth = _clusters(np.random.default_rng(1), 400)
    got = accuracy(judge.predict(x_test)["gender"], [t["gender"] for t in truth])
    assert got < 0.65


def test_judge_refuses_another_encoder_and_bad_files(tmp_path):
    import dataclasses

    registry = toy_registry()
    judge = dataclasses.replace(_toy_judge(registry), encoder="dlib")
    with pytest.raises(InputError, match="trained on 'dlib'"):
        judge.embed(
            registry.create("face_encoder", "tiny-face"), np.zeros((1, 16, 16, 3), np.uint8)
        )
    with pytest.raises(InputError, match="train_attribute_judge"):
        AttributeJudge.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not an attribute judge"):
        AttributeJudge.load(tmp_path / "bad.json")


def test_fit_softmax_needs_every_class():
    with pytest.raises(InputError, match="no examples"):
        fit_softmax(np.zeros((4, 2)), np.array([0, 0, 1, 1]), 3, l2=1e-3)


def test_judge_labels_map_both_data_sets_to_its_classes():
    assert judge_labels({"gender": "male", "hair_color": "blond"}) == {
        "gender": "male",
        "hair_color": "golden",
    }
    assert judge_labels({"gender": "female", "bald": True}) == {"gender": "female"}
    assert judge_labels({"hair_color": "grey"}) == {}


def test_the_shipped_judge_was_trained_on_training_photos_only():
    judge = AttributeJudge.load()
    assert judge.encoder == "dlib" and judge.crop_size == 64
    assert set(judge.heads) == set(HEADS)
    assert "training-split" in judge.meta["trained_on"]
    # its accuracy on the real development photos is recorded, and is worth grading with
    assert judge.meta["dev_accuracy"]["fs2k_dev"]["gender"]["accuracy"] > 0.8


def test_onnxruntime_backend_samples_like_eager(gates_report, tmp_path):
    pytest.importorskip("onnxruntime")
    from facefit.generator.gates import GateRunner
    from facefit_runtime.parity import TOLERANCES

    _, _, registry, (live, _, _), _ = gates_report
    settings = GateSettings(sampler="ddim", steps=4, batch_size=2)
    eager = GateRunner(live, settings, registry=registry)
    evidence = [eager.conditions(text=s) for s in SENTENCES[:3]]  # a full and a partial batch
    onnx = GateRunner(
        live,
        GateSettings(sampler="ddim", steps=4, batch_size=2, backend="onnxruntime"),
        registry=registry,
        backend_options={"cache_dir": str(tmp_path)},
    )
    diff = np.abs(onnx.sample(evidence).astype(int) - eager.sample(evidence).astype(int))
    assert diff.max() <= TOLERANCES["fp32"].image_max
    assert diff.mean() <= TOLERANCES["fp32"].image_mean
