"""Hostile evidence gets a clear refusal or a visible flag, never a silent ranking.

Images are made here: a line drawing of a house, noise, a 1×1 image, a blank page,
an unaligned low-quality crop; beside them a real FS2K sketch and a photo crop from
the demo data. The face checks are YuNet's (skipped when the model files are not
installed); the generator, encoder and gallery are the miniature ones of
``tests.pipeline_helpers``, so a whole ``facefit generate`` takes about a second.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facefit.cli import main
from facefit.errors import InputError
from facefit.imaging.images import load_image
from facefit.pipeline.demo import DEMO_DATA
from facefit.types import Evidence
from tests.hostile_helpers import house, noise
from tests.pipeline_helpers import save_model, toy_gallery, toy_registry

SKETCH = DEMO_DATA / "probes" / "sketch_photo1_0724.png"
PHOTO = DEMO_DATA / "gallery" / "photo1_0724.jpg"


def small(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)


def framed(image: np.ndarray) -> np.ndarray:
    """The photo crop inside a larger camera frame (a face to detect, not aligned)."""
    import cv2

    return cv2.copyMakeBorder(image, 40, 40, 80, 80, cv2.BORDER_CONSTANT, value=(90, 120, 60))


@pytest.fixture(scope="module")
def detector():
    from facefit import Registry, weights
    from facefit.errors import WeightsNotFoundError

    try:
        weights.resolve("yunet")
    except WeightsNotFoundError as exc:
        pytest.skip(f"YuNet is not installed ({exc}); run `facefit models install`")
    return Registry.load().create("face_detector", "yunet")


@pytest.fixture(scope="module")
def photo():
    return load_image(PHOTO)


# (row name, evidence modality, image maker, allowed, expected)
# expected: "refused: <text in the message>" or the verdict's use ("detected", "aligned",
# "as given": the last only ever where allowed, and flagged).
ROWS = [
    ("house sketch", "sketch", lambda p: house(), False, "refused: --allow-no-face sketch"),
    ("house sketch, allowed", "sketch", lambda p: house(), True, "as given"),
    ("noise sketch", "sketch", lambda p: noise((200, 160)), False, "refused: no face detected"),
    ("noise sketch, allowed", "sketch", lambda p: noise((200, 160)), True, "as given"),
    ("blank page", "sketch", lambda p: np.full((200, 160), 255, np.uint8), True, "refused: blank"),
    ("landscape lines", "sketch", lambda p: house(100, 300), True, "refused: aspect ratio"),
    ("1x1 sketch", "sketch", lambda p: np.zeros((1, 1), np.uint8), True, "refused: 1x1 pixels"),
    ("real FS2K sketch", "sketch", lambda p: load_image(SKETCH), False, "detected"),
    ("1x1 lq", "lq", lambda p: np.zeros((1, 1, 3), np.uint8), True, "refused: too small"),
    ("blank lq", "lq", lambda p: np.full((16, 16, 3), 90, np.uint8), True, "refused: blank"),
    ("noise lq", "lq", lambda p: noise((16, 16, 3)), False, "refused: --allow-no-face lq"),
    ("noise lq, allowed", "lq", lambda p: noise((16, 16, 3)), True, "as given"),
    (
        "unaligned 16px lq",
        "lq",
        lambda p: small(np.roll(p, 25, 1), 16),
        False,
        "refused: not where",
    ),
    ("aligned 16px lq", "lq", lambda p: small(p, 16), False, "aligned"),
    ("camera frame lq", "lq", lambda p: framed(p), False, "detected"),
    ("noise frame lq", "lq", lambda p: noise((120, 200, 3)), True, "refused: no face found"),
    ("noise reference", "reference", lambda p: noise((112, 112, 3)), False, "refused: no face"),
    ("noise reference, allowed", "reference", lambda p: noise((112, 112, 3)), True, "as given"),
    ("noise frame reference", "reference", lambda p: noise((90, 160, 3)), True, "refused: square"),
    ("photo crop reference", "reference", lambda p: p, False, "aligned"),
    ("photo frame reference", "reference", lambda p: framed(p), False, "detected"),
]


@pytest.mark.parametrize(
    ("modality", "make", "allowed", "expected"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_each_image_gets_a_verdict_or_a_refusal(detector, photo, modality, make, allowed, expected):
    from facefit.pipeline.evidence import prepare_evidence

    evidence = Evidence(
        **{modality: make(photo)},
        sources={modality: f"{modality}-file.png"},
        allow_no_face=(modality,) if allowed else (),
    )
    if expected.startswith("refused: "):
        with pytest.raises(InputError) as caught:
            prepare_evidence(evidence, detector=detector, image_size=64)
        message = str(caught.value)
        assert message.startswith(f"{modality}-file.png: ") and expected[9:] in message
        return
    prepared = prepare_evidence(evidence, detector=detector, image_size=64)
    (check,) = prepared.checks
    assert check.use == expected and check.flagged == (expected == "as given")
    assert (check.detector_score is None) == (expected == "as given" and "no face" in check.why)
    assert prepared.notes == (check.note,)
    assert ("CAUTION" in check.note) == check.flagged


def test_framed_fallback_crops_the_drawing_not_a_black_square(detector):
    """The issue's house came out as a black 'sketch, aligned' panel."""
    from facefit.pipeline.evidence import prepare_evidence

    evidence = Evidence(sketch=house(), allow_no_face="sketch")
    aligned = prepare_evidence(evidence, detector=detector, image_size=64).sketch
    assert aligned.shape == (64, 64)
    assert (aligned > 200).mean() > 0.5 and (aligned < 128).mean() > 0.01  # paper and lines


def test_allow_no_face_names_image_modalities_only():
    with pytest.raises(InputError, match="'text' is not an image modality"):
        Evidence(text="a man", allow_no_face=("text",))
    assert Evidence(text="a man", allow_no_face="lq").allow_no_face == ("lq",)


# -- facefit generate, end to end ------------------------------------------------------


@pytest.fixture(scope="module")
def registry():
    return toy_registry()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, registry, detector, photo):
    """Tiny model and gallery with YuNet's face checks; the hostile images as files."""
    root = tmp_path_factory.mktemp("bad-evidence")
    model = save_model(root / "model")
    toy_gallery(registry).save(root / "gallery")
    (root / "pipeline.toml").write_text(
        f'[pipeline]\nmodel = "{model}"\nrounds = 2\ncandidates = 2\nsteps = 2\n'
        'stop_when_stable = 0\n\n[face_detector]\nplugin = "yunet"\n\n'
        '[face_encoder]\nplugin = "tiny-face"\n'
    )
    images = {
        "house.png": house(),
        "noise.png": noise((200, 160)),
        "noise-ref.png": noise((112, 112, 3)),
        "one.png": np.zeros((1, 1, 3), np.uint8),
        "blank.png": np.full((200, 160), 255, np.uint8),
        "noise16.png": noise((16, 16, 3)),
    }
    for name, image in images.items():
        Image.fromarray(image).save(root / name)
    return root


def generate(registry, setup, *args):
    base = ["generate", "--config", setup / "pipeline.toml", "-g", setup / "gallery"]
    result = CliRunner().invoke(main, [str(a) for a in [*base, *args]], obj={"registry": registry})
    assert "Traceback" not in result.output, result.output
    return result


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sketch", "house.png"], "house.png: no face detected in this sketch"),
        (["--sketch", "noise.png"], "--allow-no-face sketch"),
        (["--sketch", "blank.png", "--allow-no-face", "sketch"], "blank.png: the sketch is blank"),
        (["--reference", "noise-ref.png"], "noise-ref.png: no face found in the reference"),
        (["--lq", "one.png", "--allow-no-face", "lq"], "one.png: the low-quality image is 1x1"),
        (["--lq", "noise16.png"], "noise16.png: no face was found"),
    ],
    ids=["house", "noise", "blank", "noise reference", "1x1 lq", "noise lq"],
)
def test_generate_refuses_unusable_evidence(registry, setup, tmp_path, args, message):
    args = [setup / a if a.endswith(".png") else a for a in args]
    result = generate(registry, setup, *args, "--text", "a man", "--out", tmp_path / "out")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "ranked identities" not in result.output
    assert not (tmp_path / "out").exists()


def test_generate_flags_evidence_used_as_given(registry, setup, tmp_path):
    out = tmp_path / "flagged"
    args = ["--sketch", setup / "house.png", "--lq", setup / "noise16.png", "--out", out]
    result = generate(registry, setup, *args, "--allow-no-face", "sketch", "--allow-no-face", "lq")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    caution = next(i for i, line in enumerate(lines) if line.startswith("CAUTION"))
    assert caution < next(i for i, line in enumerate(lines) if "ranked identities" in line)
    assert "sketch: CAUTION" in result.output and "lq: CAUTION" in result.output
    data = json.loads((out / "result.json").read_text())
    assert data["confidence"] == "low" and len(data["caution"]) == 2
    assert [e["use"] for e in data["evidence"]] == ["as given", "as given"]
    assert all(e["flagged"] for e in data["evidence"])
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["allow_no_face"] == ["sketch", "lq"]
    assert [e["flagged"] for e in provenance["evidence"]] == [True, True]
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB"))
    assert tuple(sheet[2, 2]) == (200, 0, 0)  # the red band across the top

    clean = tmp_path / "clean"
    result = generate(registry, setup, "--sketch", SKETCH, "--out", clean)
    assert result.exit_code == 0 and "CAUTION" not in result.output, result.output
    data = json.loads((clean / "result.json").read_text())
    assert data["confidence"] == "normal" and data["caution"] == []
    assert data["evidence"][0]["use"] == "detected" and data["evidence"][0]["detector_score"] > 0.6
    sheet = np.asarray(Image.open(clean / "contact_sheet.png").convert("RGB"))
    assert tuple(sheet[2, 2]) != (200, 0, 0)


def test_existing_output_is_refused_before_any_model_loads(registry, setup, tmp_path, monkeypatch):
    import facefit.pipeline as pipeline_module

    out = tmp_path / "run"
    result = generate(registry, setup, "--sketch", SKETCH, "--out", out)
    assert result.exit_code == 0, result.output
    before = (out / "result.json").read_bytes()

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded before --out was checked")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline_module, "Pipeline", no_models)
        again = generate(registry, setup, "--sketch", SKETCH, "--seed", "3", "--out", out)
    assert again.exit_code == 2 and "pass --force to replace it" in again.output
    assert (out / "result.json").read_bytes() == before

    forced = generate(registry, setup, "--sketch", SKETCH, "--seed", "3", "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert (out / "result.json").read_bytes() != before
    assert not list(tmp_path.glob(".run.*"))  # no partial or old copies left beside it

    other = tmp_path / "not-facefit"
    other.mkdir()
    (other / "notes.txt").write_text("the investigator's notes")
    refused = generate(registry, setup, "--sketch", SKETCH, "--out", other, "--force")
    assert refused.exit_code == 2 and "not a facefit output folder" in refused.output
    assert (other / "notes.txt").read_text() == "the investigator's notes"


def test_batch_lists_unusable_probes_and_runs_the_rest(registry, setup, tmp_path):
    manifest = setup / "hostile.csv"
    manifest.write_text(f"id,sketch,text\nhouse,house.png,a man\nreal,{SKETCH},a man\n")
    out = tmp_path / "batch"
    result = generate(registry, setup, "--manifest", manifest, "--out", out)
    assert result.exit_code == 1
    assert "1 probes done, 0 already complete, 1 failed" in result.output
    assert "house: " in result.output and "house.png: no face detected" in result.output
    assert (out / "real" / "result.json").is_file() and not (out / "house").exists()


def test_python_api_follows_the_same_rules(registry, setup):
    from facefit.config import load_config
    from facefit.pipeline import Pipeline
    from facefit.pipeline.output import cautions

    pipeline = Pipeline(
        load_config(setup / "pipeline.toml"), registry=registry, gallery=setup / "gallery"
    )
    with pytest.raises(InputError, match="no face detected in this sketch"):
        pipeline.run(Evidence(sketch=house()))
    result = pipeline.run(Evidence(sketch=house(), allow_no_face="sketch"), rounds=1)
    assert cautions(result) and cautions(result)[0].startswith("sketch: CAUTION")
    assert pipeline.prepare(Evidence(sketch=house(), allow_no_face="sketch")).flagged
