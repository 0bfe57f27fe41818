"""The harness on tiny benchmarks whose ranks are known by construction.

Images are solid colours read by the code detector/encoder of
``tests/plugins/eval_codes.py``: colour ``(a, b, w)`` embeds as
``cos θ · e_a + sin θ · e_b`` (θ = w/255 · 90°), a gallery photo of identity ``i``
is ``(i, i, 0)`` and a red channel of 0 means "no face".
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facefit import Registry
from facefit.evaluation import (
    GalleryImage,
    Manifest,
    ModeUnavailable,
    Probe,
    evaluate,
    read_celeba,
    read_fs2k,
    write_report,
)
from facefit.evaluation.manifest import ManifestError
from facefit.evaluation.readers import parse_probe_set
from facefit.types import Candidate, Match, Result, RoundTrace
from tests.plugins import eval_codes
from tests.plugins.eval_codes import code_image

N = 12
FALLBACK = "sketch: no face detected, framed-drawing fallback used"
# sketch codes: identities 1–9 exact; 10 leans to 11 (θ = 60°: rank 2);
# 11 leans a little to 12 (θ = 30°: rank 1); 12 has no face: the framed-drawing
# fallback embeds it anyway, as a zero vector that ties everything (last rank)
SKETCHES = {i: (i, i, 0) for i in range(1, 10)} | {
    10: (10, 11, 170),
    11: (11, 12, 85),
    12: (0, 0, 0),
}


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_fs2k(root):
    """A tiny FS2K-format folder: 12 pairs, PNG photos and sketches, attributes."""
    pairs = []
    for i in range(1, N + 1):
        pid = f"photo1_{i:04d}"
        _save(root / "photo" / f"{pid}.png", code_image(i, i, 0))
        _save(root / "sketch" / f"{pid}.png", code_image(*SKETCHES[i]))
        pairs.append(
            {
                "id": pid,
                "photo": f"photo/{pid}.png",
                "sketch": f"sketch/{pid}.png",
                "skin_color": [32, 32],
                "lip_color": [150.0, 80.0, 80.0],
                "eye_color": [60.0, 50.0, 40.0],
                "hair": 0,
                "hair_color": 1,
                "gender": 0 if i <= 6 else 1,
                "earring": 1,
                "smile": 1,
                "frontal_face": 0,
                "style": 0,
            }
        )
    (root / "annotations.json").write_text(json.dumps(pairs))
    return root


@pytest.fixture
def registry():
    return Registry.load(entry_points=False, plugins=[("codes", eval_codes)])


@pytest.fixture
def fs2k(tmp_path):
    return make_fs2k(tmp_path / "fs2k")


def _result(run, mode, probe_set):
    return next(r for r in run.results if r.mode == mode and r.probe_set == probe_set)


def test_direct_mode_ranks_cmc_tar_and_groups(fs2k, registry):
    bench = read_fs2k(fs2k, probe_sets=["sketch", "lq16", "text"])
    run = evaluate(
        [bench], ["direct"], registry=registry, detector="code", encoder="code", progress=False
    )
    sketch = _result(run, "direct", "sketch")
    m = sketch.metrics
    assert m.ranks.tolist() == [1] * 9 + [2, 1, N]
    assert m.failed == 0 and sketch.notes == {FALLBACK: 1}
    assert m.rank_rates == {1: 10 / 12, 5: 11 / 12, 10: 11 / 12}
    assert m.cmc[:3].tolist() == pytest.approx([10 / 12, 11 / 12, 11 / 12])
    # impostors: one 0.866 (probe 10 → id 11), one 0.5 (probe 11 → id 12), the
    # other 130 are 0. FAR 1e-2 lets 1 of 132 pass: accept > 0.5.
    assert m.tar[1e-2] == pytest.approx(10 / 12)
    assert m.tar[1e-3] is None  # 132 impostor pairs cannot resolve 1e-3
    assert m.groups["gender"]["male"]["rank1"] == 1.0
    assert m.groups["gender"]["female"]["rank1"] == pytest.approx(4 / 6)
    # low-quality copies of the true photos keep the code: every probe is rank 1
    lq = _result(run, "direct", "lq16")
    assert lq.lq_made_at == 16 and lq.metrics.rank1 == 1.0
    text = _result(run, "direct", "text")
    assert text.status == "unsupported" and "text needs a generating mode" in text.reason


def test_unavailable_modes_are_reported_not_approximated(fs2k, registry):
    def no_pipeline(context):
        raise ModeUnavailable("the generator has not landed")

    bench = read_fs2k(fs2k, probe_sets=["sketch"])
    run = evaluate(
        [bench], ["direct", "one-shot", "iterative", "matcher"], registry=registry,
        detector="code", encoder="code", generator_factory=no_pipeline, progress=False,
    )  # fmt: skip
    assert run.modes["direct"]["available"]
    for mode in ("one-shot", "iterative"):
        assert run.modes[mode] == {
            "summary": run.modes[mode]["summary"],
            "available": False,
            "reason": "the generator has not landed",
        }
        assert _result(run, mode, "sketch").metrics is None
    assert "--matcher" in run.modes["matcher"]["reason"]


def test_matcher_mode_uses_the_matcher_encoder(fs2k, registry):
    bench = read_fs2k(fs2k, probe_sets=["sketch"])
    run = evaluate(
        [bench], ["direct", "matcher"], registry=registry, detector="code", encoder="code",
        matcher="code-swapped", progress=False,
    )  # fmt: skip
    matcher = _result(run, "matcher", "sketch")
    assert matcher.encoder == "code-swapped"
    # swapped reading: probe 10 now leans to 10 (rank 1), probe 11 to 12 (rank 2)
    assert matcher.metrics.ranks.tolist() == [1] * 9 + [1, 2, N]
    missing = evaluate(
        [bench], ["matcher"], registry=registry, detector="code", encoder="code",
        matcher="nope", progress=False,
    )  # fmt: skip
    assert "'nope' is not installed" in missing.modes["matcher"]["reason"]


def test_generating_mode_ranks_from_the_result_and_grades_candidates(fs2k, registry):
    """A generator that "renders" the sketch's code as a face and retrieves by it."""

    def factory(context):
        embedder = context.embedder("code")
        gallery = context.gallery("code")

        def generate(evidence, rounds):
            face = np.asarray(evidence.sketch)
            vector = embedder.embed_aligned(embedder.align(face))
            scores, _ = gallery.scores(vector)
            order = np.argsort(-scores[0])[:5]
            matches = tuple(
                Match(gallery.identities[j], float(scores[0, j]), rank)
                for rank, j in enumerate(order, start=1)
            )
            candidate = Candidate(face[:32, :32], round=0, index=0, seed=rounds)
            return Result(matches, (RoundTrace(0, (candidate,), matches),))

        return generate

    bench = read_fs2k(fs2k, probe_sets=["sketch"])
    run = evaluate(
        [bench], ["one-shot"], registry=registry, detector="code", encoder="code",
        graders=["code", "missing-grader"], generator_factory=factory, progress=False,
    )  # fmt: skip
    result = _result(run, "one-shot", "sketch")
    assert result.metrics.ranks.tolist() == [1] * 9 + [2, 1, N]
    # the toy generator finds no face in sketch 12: a failure, counted as a miss
    assert result.metrics.failed == 1 and result.errors == {"NoFaceError": 1}
    # candidates are the sketches' codes: cosine to the true photo is cos θ
    expected = np.mean([1.0] * 9 + [np.cos(np.pi / 3), np.cos(np.pi / 6)])
    assert result.grades["code"] == pytest.approx(expected, abs=1e-6)
    assert result.grades["missing-grader"] is None
    assert any("grader missing-grader unavailable" in note for note in result.notes)


def test_celeba_reader_and_distractors(tmp_path, registry):
    root = tmp_path / "celeba"
    rows = ["image,celeba_identity,has_attrs,Male,Young"]
    for ident in (5, 6, 7):
        for k in range(3):
            name = f"{ident}{k:05d}.jpg"
            # first photo (by name) is enrolled; identity 7's probes lean to identity 5
            code = (ident, ident, 0) if ident != 7 or k == 0 else (7, 5, 200)
            _save(root / "faces" / name, code_image(*code))
            rows.append(f"{name},{ident},{int(k == 0)},{1 if ident == 5 else -1},1")
    (root / "identities.csv").write_text("\n".join(rows) + "\n")
    _save(root / "extra" / "d1.png", code_image(20, 20, 0))
    bench = read_celeba(root, probe_sets=["photo", "lq8"])
    assert len(bench.gallery) == 3 and len(bench.probes) == 12
    assert bench.probes[0].groups == {"gender": "male", "age": "young"}
    bench = Manifest(bench.name, bench.root, bench.gallery, bench.probes, distractors=("extra",))
    run = evaluate(
        [bench], ["direct"], registry=registry, detector="code", encoder="code", progress=False
    )
    photo = _result(run, "direct", "photo")
    assert photo.metrics.identities == 4  # three enrolled + one distractor
    assert photo.metrics.ranks.tolist() == [1, 1, 1, 1, 2, 2]


def test_report_files(fs2k, registry, tmp_path):
    bench = read_fs2k(fs2k, probe_sets=["sketch", "lq8"])
    run = evaluate(
        [bench], ["direct"], registry=registry, detector="code", encoder="code", progress=False
    )
    written = write_report(run, tmp_path / "out", command="facefit eval x", date="2026-11-22")
    data = json.loads(written["json"].read_text())
    sketch = next(r for r in data["results"] if r["probe_set"] == "sketch")
    assert sketch["rank1"] == pytest.approx(10 / 12, abs=1e-4)
    assert sketch["tar_at_far"] == {"0.01": pytest.approx(10 / 12, abs=1e-4), "0.001": None}
    assert data["date"] == "2026-11-22" and data["command"] == "facefit eval x"
    rows = [json.loads(line) for line in written["probes"].read_text().splitlines()]
    assert len(rows) == 24
    assert rows[11]["notes"] == [FALLBACK] and rows[11]["rank"] == N
    markdown = written["markdown"].read_text()
    assert "lq made from the true photo at 8×8" in markdown
    assert "| direct | sketch | sketch | 12 | 0 | 83.3% | 91.7% | 91.7% | 83.3% | — |" in markdown
    assert "gender: female" in markdown
    for kind in ("cmc", "contact fs2k direct"):
        assert written[kind].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_set_names():
    assert parse_probe_set("sketch+text+lq8") == {
        "sketch": True,
        "photo": False,
        "text": True,
        "lq": 8,
    }
    with pytest.raises(ManifestError, match="unknown probe set"):
        parse_probe_set("lq12")
    with pytest.raises(ManifestError, match="at most one low-quality size"):
        parse_probe_set("lq8+lq16")


def test_readers_refuse_what_a_format_cannot_make(fs2k, tmp_path):
    with pytest.raises(ManifestError, match="cannot be made from a FS2K folder"):
        read_fs2k(fs2k, probe_sets=["photo"])
    with pytest.raises(ManifestError, match="requested pair"):
        read_fs2k(fs2k, ids=["photo9_9999"])


def test_in_memory_manifest_with_a_real_lq_frame(tmp_path, registry):
    _save(tmp_path / "a.png", code_image(1, 1, 0))
    _save(tmp_path / "b.png", code_image(2, 2, 0))
    _save(tmp_path / "frame.png", code_image(2, 1, 60))
    bench = Manifest(
        "mem", tmp_path,
        gallery=(GalleryImage("a", "alice", "a.png"), GalleryImage("b", "bob", "b.png")),
        probes=(Probe("p", "bob", "cctv", lq="frame.png"),),
    )  # fmt: skip
    run = evaluate([bench], ["direct"], registry=registry, detector="code", encoder="code",
                   progress=False)  # fmt: skip
    result = _result(run, "direct", "cctv")
    assert result.lq_made_at is None and result.metrics.rank1 == 1.0


@pytest.mark.shared_data
def test_direct_on_real_dev_pairs(shared_data):
    """SFace on 20 real FS2K development pairs: runs end to end, ranks are sane."""
    from facefit.datasets.splits import FS2K_DIR, fs2k_split

    ids = fs2k_split(shared_data).dev[:20]
    bench = read_fs2k(shared_data / FS2K_DIR, probe_sets=["sketch", "lq16"], ids=ids)
    run = evaluate([bench], ["direct"], progress=False)
    sketch, lq = (_result(run, "direct", s) for s in ("sketch", "lq16"))
    assert sketch.metrics.identities == 20 and sketch.metrics.failed == 0
    assert run.benchmarks[0].enrolment["sface"]["images"] == 20
    assert sketch.metrics.rank_rates[5] >= 0.5  # 28.8% rank-1 among 1,046 held-out photos
    assert lq.metrics.rank1 >= 0.5  # a 16×16 copy of the gallery photo itself


def test_fs2k_gallery_only_pairs_enlarge_the_gallery(fs2k):
    ids = [f"photo1_{i:04d}" for i in range(1, N + 1)]
    bench = read_fs2k(fs2k, probe_sets=["sketch"], ids=ids[:3], gallery_only=ids[3:])
    assert len(bench.gallery) == N and len(bench.probes) == 3
    assert "the photos of 9 other pairs" in bench.description
    with pytest.raises(ManifestError, match="both a probe and gallery-only"):
        read_fs2k(fs2k, ids=ids[:3], gallery_only=ids[2:])


def test_exact_scores_agree_with_the_gallery_index(tmp_path):
    """The harness's identity scores are what GalleryIndex's max-fused search returns."""
    from facefit.evaluation.enrolment import enrol
    from facefit.imaging.faces import FaceEmbedder

    for ident in range(1, 5):
        for k in range(2):  # two photos per identity, leaning to different neighbours
            _save(
                tmp_path / f"g{ident}{k}.png", code_image(ident, ident % 4 + 1 + k % 2, 40 + 50 * k)
            )
    gallery = tuple(
        GalleryImage(f"g{i}{k}", f"id{i}", f"g{i}{k}.png") for i in range(1, 5) for k in range(2)
    )
    _save(tmp_path / "p.png", code_image(2, 3, 100))
    bench = Manifest("g", tmp_path, gallery, (Probe("p", "id2", "photo", reference="p.png"),))
    from facefit_plugins import retrievers

    registry = Registry.load(
        entry_points=False, plugins=[("codes", eval_codes), ("retrievers", retrievers)]
    )
    embedder = FaceEmbedder.from_registry(registry, detector="code", encoder="code")
    enrolled = enrol(bench.validate(), embedder)
    query = embedder.embed_aligned(embedder.align(code_image(2, 3, 100)))
    scores, best = enrolled.scores(query)
    hits = enrolled.to_gallery_index(embedder.encoder, registry=registry).search(query[0], k=4)
    order = np.argsort(-scores[0], kind="stable")
    assert [h.identity for h in hits] == [enrolled.identities[j] for j in order]
    assert [h.score for h in hits] == pytest.approx(scores[0, order].tolist(), abs=1e-6)
    assert [h.faces[0].source for h in hits] == [enrolled.image_paths[best[0, j]] for j in order]
