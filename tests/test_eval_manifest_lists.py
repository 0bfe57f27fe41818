"""Several witnesses in a benchmark manifest: lists of sketches, frames and descriptions.

Images are solid colours read by the code detector/encoder of
``tests/plugins/eval_codes.py``: colour ``(a, b, w)`` embeds as
``cos θ · e_a + sin θ · e_b`` (θ = w/255 · 90°); a gallery photo of identity ``i`` is
``(i, i, 0)``.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from facefit import Registry
from facefit.errors import InputError
from facefit.evaluation import evaluate, write_report
from facefit.evaluation.evidence import load_probe
from facefit.evaluation.manifest import ManifestError, Probe, load_manifest, parse_manifest
from facefit.evaluation.modes import EvalContext
from tests.plugins import eval_codes
from tests.plugins.eval_codes import code_image

# identity 2's two witnesses: each drawing leans to another identity (3, 4) at θ = 35°,
# so each alone ranks identity 2 second (cos 0.816 to 3 or 4, 0.578 to 2); their mean
# ranks it first (0.578 against 0.408 for 3 and for 4)
LEAN_3, LEAN_4 = (3, 2, 100), (4, 2, 100)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def registry():
    return Registry.load(entry_points=False, plugins=[("codes", eval_codes)])


@pytest.fixture
def root(tmp_path):
    for i in range(1, 5):
        _save(tmp_path / f"g{i}.png", code_image(i, i, 0))
    _save(tmp_path / "s3.png", code_image(*LEAN_3))
    _save(tmp_path / "s4.png", code_image(*LEAN_4))
    _save(tmp_path / "f2.png", code_image(2, 2, 0))
    return tmp_path


def _data(probes):
    return {
        "format": "facefit-benchmark",
        "name": "witnesses",
        "gallery": [
            {"id": f"g{i}", "identity": f"id{i}", "path": f"g{i}.png"} for i in range(1, 5)
        ],
        "probes": probes,
    }


def _write(root, probes):
    path = root / "bench.json"
    path.write_text(json.dumps(_data(probes)))
    return path


LISTS = {
    "id": "two",
    "identity": "id2",
    "probe_set": "sketches",
    "sketch": ["s3.png", "s4.png"],
    "lq": ["f2.png", "g2.png"],
    "lq_size": 16,
    "text": ["a man", "short dark hair"],
}


def test_a_list_manifest_parses_and_round_trips(root):
    manifest = load_manifest(_write(root, [LISTS]))
    (probe,) = manifest.probes
    assert probe.sketch == "s3.png" and probe.extra_sketches == ("s4.png",)
    assert probe.lq == "f2.png" and probe.extra_lq == ("g2.png",)
    assert probe.text == "a man" and probe.extra_texts == ("short dark hair",)
    assert probe.entries("sketch") == ("s3.png", "s4.png")
    assert probe.modalities == ("sketch", "lq", "text")
    assert probe.evidence_counts == {"sketch": 2, "lq": 2, "text": 2}
    assert probe.to_json()["sketch"] == ["s3.png", "s4.png"]
    again = load_manifest(manifest.save(root / "saved" / "bench.json"))
    assert again.probes == manifest.probes


def test_single_strings_give_the_probes_they_always_gave(root):
    single = {"id": "p", "identity": "id2", "probe_set": "sketch", "sketch": "s3.png"}
    single |= {"lq": "f2.png", "lq_size": 8, "text": "a man", "groups": {"gender": "male"}}
    (probe,) = load_manifest(_write(root, [single])).probes
    expected = Probe(
        "p", "id2", "sketch", sketch="s3.png", lq="f2.png", lq_size=8, text="a man",
        groups={"gender": "male"},
    )  # fmt: skip
    assert probe == expected
    assert probe.extra_sketches == probe.extra_lq == probe.extra_texts == ()
    assert probe.to_json() == single  # strings stay strings
    assert probe.evidence_counts == {"sketch": 1, "lq": 1, "text": 1}
    # the probe set named from the evidence, as before
    (unnamed,) = load_manifest(_write(root, [{"identity": "id2", "sketch": ["s3.png"]}])).probes
    assert unnamed.probe_set == "sketch" and unnamed.extra_sketches == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sketch": []}, "probes[0] (probe 'bad'): 'sketch' is an empty list"),
        ({"lq": ["f2.png", 7]}, "probes[0] (probe 'bad'): 'lq' entry 2 must be text"),
        ({"text": ["a man", None]}, "'text' entry 2 must be text"),
        ({"reference": ["g2.png", "g3.png"]}, "'reference' takes one photo, not a list"),
        ({"sketch": {"a": "s3.png"}}, "'sketch' must be text"),
    ],
)
def test_bad_lists_are_refused_naming_the_probe_and_field(root, change, message):
    probe = {"id": "bad", "identity": "id2", "sketch": "s3.png"} | change
    with pytest.raises(ManifestError, match=re.escape(message)) as caught:
        parse_manifest(_data([probe]), base=root)
    assert isinstance(caught.value, InputError)


def test_missing_files_and_blank_descriptions_in_lists_are_all_listed(root):
    probe = {"id": "p", "identity": "id2", "sketch": ["s3.png", "gone.png"]}
    probe |= {"lq": ["f2.png", "lost.png"], "text": ["a man", "  "]}
    with pytest.raises(ManifestError) as caught:
        load_manifest(_write(root, [probe]))
    text = str(caught.value)
    assert "3 problem(s)" in text
    assert "probe 'p': sketch 2 file not found" in text and "gone.png" in text
    assert "probe 'p': lq 2 file not found" in text and "lost.png" in text
    assert "probe 'p': text 2 is empty" in text


def test_every_sketch_and_frame_is_loaded(root, registry):
    manifest = load_manifest(_write(root, [LISTS]))
    context = EvalContext(manifest, registry, detector="code", encoder="code")
    loaded = load_probe(manifest, manifest.probes[0], context.embedder("code"))
    evidence = loaded.evidence
    assert len(evidence.images("sketch")) == 2 and len(evidence.images("lq")) == 2
    assert evidence.extra_sketches[0][0, 0].tolist() == list(LEAN_4)
    assert all(frame.shape == (16, 16, 3) for frame in evidence.images("lq")) and loaded.lq_aligned
    assert evidence.texts == ("a man", "short dark hair")
    assert evidence.sources["sketch.2"].endswith("s4.png")
    assert "reduced to 16x16" in evidence.sources["lq.2"]


def _witness_probes():
    base = {"identity": "id2", "probe_set": "sketch"}
    return [
        base | {"id": "alone-3", "sketch": "s3.png"},
        base | {"id": "alone-4", "sketch": "s4.png"},
        base | {"id": "both", "sketch": ["s3.png", "s4.png"]},
    ]


def test_the_direct_mode_scores_every_sketch(root, registry, tmp_path):
    manifest = load_manifest(_write(root, _witness_probes()))
    run = evaluate(
        [manifest], ["direct"], registry=registry, detector="code", encoder="code", progress=False
    )
    (result,) = run.results
    assert result.metrics.ranks.tolist() == [2, 2, 1]  # each alone second, both first
    alone_3, alone_4, both = (o.scores for o in result.outcomes)
    np.testing.assert_allclose(both, (alone_3 + alone_4) / 2, atol=1e-6)
    written = write_report(run, tmp_path / "out")
    rows = [json.loads(line) for line in written["probes"].read_text().splitlines()]
    assert [r.get("evidence") for r in rows] == [None, None, {"sketch": 2}]
    assert written["contact witnesses direct"].read_bytes()[:4] == b"\x89PNG"


def test_the_direct_mode_gives_each_source_equal_weight(root, registry):
    """Two sketches and one frame: the sketches' mean, then the mean with the frame."""
    probes = [
        {"id": "s", "identity": "id2", "probe_set": "x", "sketch": ["s3.png", "s4.png"]},
        {"id": "f", "identity": "id2", "probe_set": "x", "lq": "s3.png"},
        {"id": "sf", "identity": "id2", "probe_set": "x", "sketch": ["s3.png", "s4.png"]}
        | {"lq": "s3.png"},
    ]
    manifest = load_manifest(_write(root, probes))
    run = evaluate(
        [manifest], ["direct"], registry=registry, detector="code", encoder="code", progress=False
    )
    sketches, frame, both = (o.scores for o in run.results[0].outcomes)
    np.testing.assert_allclose(both, (sketches + frame) / 2, atol=1e-6)


def test_the_fused_mode_scores_every_sketch_and_frame(root, registry):
    from facefit.evaluation.fused import direct_source_scores

    frames = {"id": "frames", "identity": "id2", "probe_set": "lq", "lq": ["s3.png", "s4.png"]}
    probes = [*_witness_probes(), frames]
    manifest = load_manifest(_write(root, probes))
    context = EvalContext(manifest, registry, detector="code", encoder="code", matcher="code")
    aligner = context.embedder("code")
    sketch = [
        direct_source_scores(context, load_probe(manifest, p, aligner))[0]["sketch"]
        for p in manifest.probes[:3]
    ]
    np.testing.assert_allclose(sketch[2], (sketch[0] + sketch[1]) / 2, atol=1e-6)
    ids = context.gallery("code").identities
    assert ids[int(np.argmax(sketch[2]))] == "id2"
    assert all(ids[int(np.argmax(s))] != "id2" for s in sketch[:2])
    frames, _, _ = direct_source_scores(context, load_probe(manifest, manifest.probes[3], aligner))
    np.testing.assert_allclose(frames["lq"], sketch[2], atol=1e-6)  # same images as frames


def test_a_generating_mode_gets_every_sketch_and_description(root, registry):
    from facefit.types import Match, Result

    seen = []

    def factory(context):
        identities = context.gallery("code").identities

        def generate(evidence, rounds):
            seen.append(evidence)
            return Result(tuple(Match(i, 0.5, n) for n, i in enumerate(identities, start=1)), ())

        return generate

    probe = {"id": "p", "identity": "id2", "probe_set": "x", "sketch": ["s3.png", "s4.png"]}
    probe["text"] = ["a man", "short dark hair"]
    manifest = load_manifest(_write(root, [probe]))
    run = evaluate(
        [manifest], ["one-shot"], registry=registry, detector="code", encoder="code",
        graders=[], generator_factory=factory, progress=False,
    )  # fmt: skip
    assert run.results[0].status == "ok" and run.results[0].metrics.failed == 0
    (evidence,) = seen
    assert [s[0, 0].tolist() for s in evidence.images("sketch")] == [list(LEAN_3), list(LEAN_4)]
    assert evidence.texts == ("a man", "short dark hair")
