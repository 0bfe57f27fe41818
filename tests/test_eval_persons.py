"""Person-level scoring: identities of one person are one, in the metrics and the reports.

The harness tests use the code detector and encoder of ``tests/plugins/eval_codes.py``
and the tiny FS2K folder of ``tests/test_eval_harness.py``, whose photo-level ranks are
known by construction: sketches 1–9 find their own photo, sketch 10 leans to photo 11
(rank 2), sketch 11 a little to photo 12 (rank 1), sketch 12 has no face and ties
everything (last rank).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from facefit import Registry
from facefit.evaluation import (
    GalleryImage,
    Manifest,
    Probe,
    evaluate,
    load_manifest,
    read_celeba,
    read_fs2k,
    write_report,
)
from facefit.evaluation.manifest import ManifestError
from facefit.evaluation.metrics import identification_metrics, person_codes, person_scores
from tests.plugins import eval_codes
from tests.plugins.eval_codes import code_image
from tests.test_eval_harness import N, _save, make_fs2k

# five gallery identities; photos a1, a2 show person A, b1, b2 person B, c is alone
IDENTITIES = ("a1", "a2", "b1", "b2", "c")
PERSONS = {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}
SCORES = np.array(
    [
        # a1    a2    b1    b2    c
        [0.50, 0.90, 0.80, 0.70, 0.60],  # truth a1, top hit a2: photo rank 5, person rank 1
        [0.80, 0.10, 0.90, 0.85, 0.20],  # truth a1 under b1, b2: photo rank 3, person rank 2
        [0.30, 0.20, 0.90, 0.70, 0.80],  # truth a2 under B and c: photo rank 5, person rank 3
    ]
)
TRUTH = np.array([0, 0, 1])


def test_a_hit_on_either_photo_of_the_truth_counts_and_persons_count_once():
    codes = person_codes(IDENTITIES, PERSONS)
    assert codes.tolist() == [0, 0, 1, 1, 2]
    collapsed, truth = person_scores(SCORES, TRUTH, codes)
    assert collapsed.tolist() == [[0.9, 0.8, 0.6], [0.8, 0.9, 0.2], [0.3, 0.9, 0.8]]
    assert truth.tolist() == [0, 0, 0]
    photo = identification_metrics(SCORES, TRUTH)
    person = identification_metrics(SCORES, TRUTH, persons=codes)
    assert photo.ranks.tolist() == [5, 3, 5] and photo.scoring == "photo"
    # probe 2: B's two photos above the truth take one rank, not two
    assert person.ranks.tolist() == [1, 2, 3] and person.scoring == "person"
    assert person.identities == 3 and person.rank_rates[1] == pytest.approx(1 / 3)
    assert person.cmc.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert photo.rank_rates[1] == 0.0
    # genuine: the true person's best photo; impostors: one best score per other person
    assert person.genuine_mean == pytest.approx((0.9 + 0.8 + 0.3) / 3)
    assert person.impostor_mean == pytest.approx((0.8 + 0.6 + 0.9 + 0.2 + 0.9 + 0.8) / 6)
    assert person.to_json()["persons"] == 3 and person.to_json()["scoring"] == "person"


def test_a_failed_probe_is_a_miss_at_person_level_too():
    codes = person_codes(IDENTITIES, PERSONS)
    person = identification_metrics(SCORES, TRUTH, persons=codes, failed=np.array([1, 0, 0]))
    assert person.ranks.tolist() == [3, 2, 3] and person.failed == 1


def test_an_undeclared_identity_is_its_own_person_even_if_a_person_has_its_name():
    assert person_codes(["x", "y", "A"], {"x": "A", "y": "A"}).tolist() == [0, 0, 1]
    assert person_codes(["x", "y"], {}).tolist() == [0, 1]


@pytest.fixture
def registry():
    return Registry.load(entry_points=False, plugins=[("codes", eval_codes)])


def _declare(folder, persons: dict[str, str]):
    """Add ``person`` fields to some pairs of an FS2K-format folder."""
    path = folder / "annotations.json"
    pairs = json.loads(path.read_text())
    for pair in pairs:
        if pair["id"] in persons:
            pair["person"] = persons[pair["id"]]
    path.write_text(json.dumps(pairs))
    return folder


@pytest.fixture
def fs2k_persons(tmp_path):
    """Pairs 10 and 11 show one person, so do 1 and 2; the other 8 are their own: 10 persons."""
    folder = make_fs2k(tmp_path / "fs2k")
    return _declare(
        folder,
        {
            "photo1_0010": "celeb-a",
            "photo1_0011": "celeb-a",
            "photo1_0001": "celeb-b",
            "photo1_0002": "celeb-b",
        },
    )


def test_fs2k_folder_with_persons_gives_photo_and_person_rank1(fs2k_persons, registry, tmp_path):
    bench = read_fs2k(fs2k_persons, probe_sets=["sketch"])
    assert bench.persons == {
        "photo1_0001": "celeb-b",
        "photo1_0002": "celeb-b",
        "photo1_0010": "celeb-a",
        "photo1_0011": "celeb-a",
    }
    run = evaluate(
        [bench], ["direct"], registry=registry, detector="code", encoder="code", progress=False
    )
    result = run.results[0]
    # photo level as before: sketch 10's top hit is photo 11, a miss
    assert result.metrics.ranks.tolist() == [1] * 9 + [2, 1, N]
    assert result.metrics.rank1 == pytest.approx(10 / 12)
    # person level: photo 11 is the same person as sketch 10, a hit; the faceless
    # sketch 12 ties all 10 persons and is last
    person = result.person_metrics
    assert person.ranks.tolist() == [1] * 11 + [10]
    assert person.rank1 == pytest.approx(11 / 12) and person.identities == 10
    assert run.benchmarks[0].persons == 10 and run.benchmarks[0].scoring == ["photo", "person"]

    written = write_report(run, tmp_path / "out", contact_rows=N)
    assert written["contact fs2k direct"].read_bytes()[:4] == b"\x89PNG"
    data = json.loads(written["json"].read_text())
    assert data["scoring"] == ["photo", "person"]
    row = data["results"][0]
    assert row["scoring"] == "photo" and row["rank1"] == pytest.approx(10 / 12, abs=1e-4)
    assert row["person"]["scoring"] == "person" and row["person"]["persons"] == 10
    assert row["person"]["rank1"] == pytest.approx(11 / 12, abs=1e-4)
    assert data["benchmarks"][0]["persons"] == 10
    probes = [json.loads(line) for line in written["probes"].read_text().splitlines()]
    assert [p["rank"] for p in probes][9:] == [2, 1, N]
    assert [p["person_rank"] for p in probes][9:] == [1, 1, 10]
    markdown = written["markdown"].read_text()
    assert "**Photo level**: every gallery identity counts on its own." in markdown
    assert "**Person level** (10 persons)" in markdown
    assert "| direct | sketch | sketch | 12 | 0 | 83.3% |" in markdown
    assert "| direct | sketch | sketch | 12 | 0 | 91.7% | 91.7% | 100.0% |" in markdown
    assert "Rank-1 by group, person level" in markdown


def test_a_benchmark_without_persons_reports_photo_level_only(registry, tmp_path):
    bench = read_fs2k(make_fs2k(tmp_path / "fs2k"), probe_sets=["sketch"])
    run = evaluate(
        [bench], ["direct"], registry=registry, detector="code", encoder="code", progress=False
    )
    assert run.results[0].person_metrics is None and run.benchmarks[0].persons is None
    written = write_report(run, tmp_path / "out", contact_rows=0)
    data = json.loads(written["json"].read_text())
    assert data["scoring"] == ["photo"] and "person" not in data["results"][0]
    assert "person_rank" not in written["probes"].read_text()
    markdown = written["markdown"].read_text()
    assert "the benchmark declares no persons" in markdown and "Person level" not in markdown


def test_persons_and_split_survive_a_manifest_file(fs2k_persons, tmp_path):
    split = {"name": "dev", "fingerprint": "abc123"}
    bench = read_fs2k(fs2k_persons, probe_sets=["sketch"], split=split)
    again = load_manifest(bench.save(tmp_path / "bench.json"))
    assert again.persons == bench.persons and again.split == split


def test_reader_persons_function_replaces_the_person_fields(fs2k_persons):
    bench = read_fs2k(fs2k_persons, probe_sets=["sketch"], persons=lambda pid: pid[-1])
    assert bench.persons["photo1_0001"] == bench.persons["photo1_0011"] == "1"


def test_an_identity_is_one_person(tmp_path):
    _save(tmp_path / "a.png", code_image(1, 1, 0))
    _save(tmp_path / "b.png", code_image(2, 2, 0))
    bench = Manifest(
        "two-persons",
        tmp_path,
        gallery=(
            GalleryImage("a", "alice", "a.png", person="x"),
            GalleryImage("b", "alice", "b.png", person="y"),
        ),
        probes=(Probe("p", "alice", "photo", reference="a.png"),),
    )
    with pytest.raises(ManifestError, match="identity 'alice': its photos declare different"):
        bench.validate()


@pytest.mark.parametrize("bad", ["", "  ", ["a"], True])
def test_fs2k_person_must_be_a_name(tmp_path, bad):
    folder = _declare(make_fs2k(tmp_path / "fs2k"), {"photo1_0003": bad})
    with pytest.raises(ManifestError, match=r"pair 2: 'person' must be a non-empty name"):
        read_fs2k(folder, probe_sets=["sketch"])


def _celeba(root, persons: dict[int, str]):
    """Identities 5, 6, 7 with 3 photos each; identity 7's probes lean to identity 5."""
    rows = ["image,celeba_identity,has_attrs,Male,Young,person"]
    for ident in (5, 6, 7):
        for k in range(3):
            name = f"{ident}{k:05d}.png"  # lossless: the codes stay exact
            code = (ident, ident, 0) if ident != 7 or k == 0 else (7, 5, 200)
            _save(root / "faces" / name, code_image(*code))
            rows.append(f"{name},{ident},0,1,1,{persons.get(ident, '')}")
    (root / "identities.csv").write_text("\n".join(rows) + "\n")
    return root


def test_celeba_person_column(tmp_path, registry):
    root = _celeba(tmp_path / "celeba", {5: "same", 7: "same"})
    bench = read_celeba(root, probe_sets=["photo"])
    assert bench.persons == {"5": "same", "7": "same"}
    run = evaluate(
        [bench], ["direct"], registry=registry, detector="code", encoder="code", progress=False
    )
    result = run.results[0]
    assert result.metrics.ranks.tolist() == [1, 1, 1, 1, 2, 2]
    assert result.person_metrics.ranks.tolist() == [1] * 6 and run.benchmarks[0].persons == 2
    rows = (
        (root / "identities.csv").read_text().replace("600001.png,6,0,1,1,", "600001.png,6,0,1,1,x")
    )
    (root / "identities.csv").write_text(rows)
    with pytest.raises(ManifestError, match="identity '6' has photos of different persons"):
        read_celeba(root, probe_sets=["photo"])


@pytest.mark.shared_data
def test_dev_split_has_the_committed_persons(shared_data):
    """The development benchmarks carry persons (the committed grouping) and their split."""
    from facefit.datasets.persons import load_persons
    from facefit.evaluation import dev_benchmarks

    persons = load_persons(shared_data)
    fs2k, large, celeba = dev_benchmarks(
        shared_data, fs2k_probe_sets=["sketch"], celeba_probe_sets=["photo"], large_gallery=True
    )
    for bench in (fs2k, large, celeba):
        assert len(bench.persons) == len(bench.identities)  # every identity has its person
        assert bench.split["name"] == "dev" and len(bench.split["fingerprint"]) == 64
    assert all(fs2k.persons[g.id] == persons.fs2k_person(g.id) for g in fs2k.gallery)
    assert celeba.persons == {i: persons.celeba_person(i) for i in celeba.identities}
    # the large gallery's extra photos show fewer persons than photos
    assert len(set(large.persons.values())) < len(large.identities)
