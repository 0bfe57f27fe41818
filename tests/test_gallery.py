"""GalleryIndex: adding, identity search, removal, persistence and its checks."""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest

from facefit import Registry
from facefit.gallery import (
    CorruptGalleryError,
    EmptyGalleryError,
    EncoderInfo,
    EncoderMismatchError,
    GalleryError,
    GalleryIndex,
    choose_retriever,
)
from facefit.gallery import choice as choice_module
from facefit.gallery.synthetic import clustered_faces

ENCODER = EncoderInfo("toy", "1", 16)


@pytest.fixture(scope="module")
def registry():
    return Registry.load(allow=["retrievers", "scann", "milvus"])


try:
    import scann  # noqa: F401

    HAVE_SCANN = True
except ImportError:
    HAVE_SCANN = False


@pytest.fixture(
    params=[
        "exact",
        "hnswlib",
        pytest.param(
            "scann",
            marks=pytest.mark.skipif(
                not HAVE_SCANN, reason="ScaNN is not installed (pip install scann; Linux only)"
            ),
        ),
    ]
)
def retriever(request):
    return request.param


def unit(rows) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def basis(i: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    v = np.zeros(16, np.float32)
    v[i] = 1.0
    v += np.random.default_rng(seed).normal(0, noise, 16).astype(np.float32)
    return unit(v)


def small_gallery(registry, retriever="exact") -> GalleryIndex:
    """Three identities: ann (3 faces near axis 0), bob (1 face, axis 1), cyd (2, axis 2)."""
    g = GalleryIndex.create(ENCODER, retriever=retriever, registry=registry)
    vectors = np.stack(
        [
            basis(0, 0.1, 1),
            basis(0, 0.1, 2),
            basis(0, 0.3, 3),
            basis(1),
            basis(2, 0.2, 4),
            basis(2, 0.2, 5),
        ]
    )
    g.add(
        vectors,
        ["ann", "ann", "ann", "bob", "cyd", "cyd"],
        sources=[f"/mugshots/{i}.jpg" for i in range(6)],
        sha256s=[hashlib.sha256(bytes([i])).hexdigest() for i in range(6)],
        metadata=[{"arrest": 2020 + i} for i in range(6)],
    )
    return g


def test_identity_search_fuses_faces_by_max_and_reports_each_face(registry, retriever):
    g = small_gallery(registry, retriever)
    hits = g.search(unit(basis(0) + 0.5 * basis(2)), k=2)
    assert [h.identity for h in hits] == ["ann", "cyd"]
    assert [h.rank for h in hits] == [1, 2]
    ann = hits[0]
    assert len(ann.faces) == 3 and ann.score == ann.faces[0].score
    assert [f.score for f in ann.faces] == sorted((f.score for f in ann.faces), reverse=True)
    assert {f.source for f in ann.faces} == {
        "/mugshots/0.jpg",
        "/mugshots/1.jpg",
        "/mugshots/2.jpg",
    }
    assert ann.faces[0].metadata["arrest"] in (2020, 2021, 2022)
    match = ann.to_match()
    assert match.identity == "ann" and match.rank == 1 and match.image_id.startswith("/mugshots/")


def test_face_search_and_batches(registry, retriever):
    g = small_gallery(registry, retriever)
    faces = g.search_faces(basis(1), k=6)
    assert faces[0].identity == "bob" and faces[0].score == pytest.approx(1.0, abs=1e-5)
    assert [f.rank for f in faces] == list(range(1, 7))
    many = g.search_many(np.stack([basis(0), basis(1), basis(2)]), k=3)
    assert [r[0].identity for r in many] == ["ann", "bob", "cyd"]
    assert all(len(r) == 3 for r in many)


def test_identity_search_widens_until_k_identities_are_found(registry):
    g = GalleryIndex.create(ENCODER, retriever="exact", registry=registry)
    # one identity with 200 near-identical faces in front of 5 others
    g.add(np.stack([basis(0, 0.01, s) for s in range(200)]), "crowd")
    g.add(np.stack([basis(i) for i in range(1, 6)]), [f"p{i}" for i in range(1, 6)])
    hits = g.search(basis(0), k=6)
    assert len(hits) == 6 and hits[0].identity == "crowd" and len(hits[0].faces) == 200


def test_remove_faces_and_identities(registry, retriever):
    g = small_gallery(registry, retriever)
    labels = [r.label for r in g.find(identity="cyd")]
    assert g.remove(labels[:1]) == 1
    assert len(g) == 5 and g.num_identities == 3
    assert g.remove_identity("ann") == 3
    assert g.identities() == ["bob", "cyd"]
    assert [h.identity for h in g.search(basis(0), k=2)] in (["cyd", "bob"], ["bob", "cyd"])
    with pytest.raises(GalleryError, match="not in the gallery"):
        g.remove_identity("ann")
    with pytest.raises(GalleryError, match="labels"):
        g.remove([labels[0]])
    new = g.add(basis(3)[None], "dan")
    assert new[0] == 6  # labels are never reused


def test_find_by_source_and_sha256(registry):
    g = small_gallery(registry)
    digest = hashlib.sha256(bytes([3])).hexdigest()
    (rec,) = g.find(sha256=digest)
    assert rec.identity == "bob" and rec.source == "/mugshots/3.jpg"
    assert g.find(source="/mugshots/3.jpg") == [rec]
    assert g.records([rec.label])[rec.label] == rec


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda g: g.search(basis(0), k=4),
            GalleryError,
            "k=4 is larger than the gallery .3 identities",
        ),
        (lambda g: g.search_faces(basis(0), k=7), GalleryError, "at most 6"),
        (lambda g: g.search(basis(0), k=0), GalleryError, "positive"),
        (lambda g: g.search(np.ones(12), k=1), GalleryError, r"\(n, 16\).*toy"),
        (lambda g: g.search(np.zeros(16), k=1), GalleryError, "zero or not finite"),
        (lambda g: g.add(np.ones((1, 8)), "x"), GalleryError, r"\(n, 16\)"),
        (lambda g: g.add(np.ones((2, 16)), ["x"]), GalleryError, "1 names for 2"),
        (lambda g: g.add(np.ones((1, 16)), [""]), GalleryError, "non-empty name"),
        (lambda g: g.add(np.ones((1, 16)), "x", sha256s=["abc"]), GalleryError, "64 lowercase hex"),
        (lambda g: g.add(np.ones((1, 16)), "x", metadata=[{"a": object()}]), GalleryError, "JSON"),
    ],
)
def test_bad_input_is_a_clear_error(registry, call, error, message):
    g = small_gallery(registry)
    with pytest.raises(error, match=message):
        call(g)
    assert len(g) == 6  # a failed add leaves nothing behind
    assert g.search_faces(basis(0), k=6)


def test_empty_gallery_search_is_a_clear_error(registry, retriever):
    g = GalleryIndex.create(ENCODER, retriever=retriever, registry=registry)
    with pytest.raises(EmptyGalleryError, match=r"empty.*gallery add"):
        g.search(basis(0), k=1)
    g.add(basis(0)[None], "x")
    g.remove_identity("x")
    with pytest.raises(EmptyGalleryError):
        g.search_faces(basis(0), k=1)


def test_save_and_load_round_trip(registry, retriever, tmp_path):
    g = small_gallery(registry, retriever)
    if retriever == "hnswlib":
        g.retriever.ef = 55
    g.remove_identity("bob")
    g.save(tmp_path / "g")
    loaded = GalleryIndex.load(tmp_path / "g", encoder=ENCODER, registry=registry)
    assert len(loaded) == 5 and loaded.identities() == ["ann", "cyd"]
    assert loaded.retriever.params() == g.retriever.params()
    if retriever == "hnswlib":
        assert loaded.retriever.ef == 55
    probe = unit(basis(0) + basis(2))
    assert loaded.search(probe, 2) == g.search(probe, 2)
    assert loaded.add(basis(5)[None], "eve")[0] == 6  # the label counter survives
    info = loaded.info()
    assert info["faces"] == 6 and info["encoder"]["name"] == "toy" and info["generation"] == 1
    loaded.save()
    assert GalleryIndex.load(tmp_path / "g", registry=registry).info()["generation"] == 2
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert all("g000001" not in n for n in names), names  # the old generation is swept


def test_the_wrong_encoder_is_refused(registry, tmp_path):
    small_gallery(registry).save(tmp_path / "g")
    for other in (
        EncoderInfo("dlib", "1", 16),
        EncoderInfo("toy", "2", 16),
        EncoderInfo("toy", "1", 32),
    ):
        with pytest.raises(EncoderMismatchError, match="built with encoder toy"):
            GalleryIndex.load(tmp_path / "g", encoder=other, registry=registry)
    g = GalleryIndex.load(tmp_path / "g", encoder=ENCODER, registry=registry)
    g.check_encoder(ENCODER)
    with pytest.raises(EncoderMismatchError, match="--encoder dlib"):
        g.check_encoder(EncoderInfo("dlib", "1", 16))


def _flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
@pytest.mark.parametrize("part", ["index", "metadata"])
def test_a_damaged_file_is_detected(registry, retriever, tmp_path, damage, part):
    small_gallery(registry, retriever).save(tmp_path / "g")
    (victim,) = [p for p in (tmp_path / "g").iterdir() if p.name.startswith(part + ".")][:1]
    if damage == "flip":
        _flip_byte(victim)
    elif damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:-10])
    else:
        victim.unlink()
    message = {"flip": "checksum", "truncate": "bytes", "delete": "missing"}[damage]
    with pytest.raises(CorruptGalleryError, match=f"{victim.name}.*{message}.*rebuild"):
        GalleryIndex.load(tmp_path / "g", registry=registry)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b'"faces": 6', b'"faces": 7'),
        lambda m: m[: len(m) // 2],
        lambda m: b"",
        lambda m: json.dumps({"format": "something else"}).encode(),
    ],
)
def test_a_damaged_manifest_is_detected(registry, tmp_path, tamper):
    small_gallery(registry).save(tmp_path / "g")
    manifest = tmp_path / "g" / "manifest.json"
    manifest.write_bytes(tamper(manifest.read_bytes()))
    with pytest.raises(CorruptGalleryError, match=r"manifest\.json is corrupt"):
        GalleryIndex.load(tmp_path / "g", registry=registry)


def test_loading_what_is_not_a_gallery(registry, tmp_path):
    with pytest.raises(GalleryError, match="no gallery here"):
        GalleryIndex.load(tmp_path / "missing", registry=registry)
    with pytest.raises(GalleryError, match="not a facefit gallery"):
        GalleryIndex.load(tmp_path, registry=registry)


def test_save_refuses_to_clobber(registry, tmp_path):
    g = small_gallery(registry)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(GalleryError, match="not empty and not a gallery"):
        g.save(tmp_path / "photos")
    assert (tmp_path / "photos" / "a.jpg").exists()
    g.save(tmp_path / "g")
    other = small_gallery(registry)
    with pytest.raises(GalleryError, match="already holds a gallery"):
        other.save(tmp_path / "g")
    other.save(tmp_path / "g", overwrite=True)
    with pytest.raises(GalleryError, match="never saved"):
        small_gallery(registry).save()


def test_a_save_never_loses_another_process_changes(registry, tmp_path):
    small_gallery(registry).save(tmp_path / "g")
    first = GalleryIndex.load(tmp_path / "g", registry=registry)
    second = GalleryIndex.load(tmp_path / "g", registry=registry)
    first.add(basis(7)[None], "fay")
    first.save()
    second.add(basis(8)[None], "gus")
    with pytest.raises(GalleryError, match="saved by another process"):
        second.save()
    assert GalleryIndex.load(tmp_path / "g", registry=registry).identities() == [
        "ann",
        "bob",
        "cyd",
        "fay",
    ]


@pytest.mark.parametrize("have_scann", [True, False])
def test_auto_picks_exact_for_small_galleries_and_moves_to_an_index(
    registry, monkeypatch, have_scann
):
    if have_scann and not choice_module.scann_available():
        pytest.skip("ScaNN is not installed (pip install scann; Linux only)")
    monkeypatch.setattr(choice_module, "scann_available", lambda: have_scann)
    index = "scann" if have_scann else "hnswlib"
    assert choose_retriever(1000, 128) == "exact"
    assert choose_retriever(1_000_000, 128) == index
    monkeypatch.setattr(choice_module, "EXACT_MAX_VALUES", 100 * 16)
    g = GalleryIndex.create(ENCODER, registry=registry)
    data = clustered_faces(150, 16, n_probes=5, seed=1)
    g.add(data.vectors[:100], [str(i) for i in data.identities[:100]])
    assert g.retriever.name == "exact"
    g.add(data.vectors[100:], [str(i) for i in data.identities[100:]])
    assert g.retriever.name == index and len(g) == 150
    assert g.search_faces(data.vectors[120], 1)[0].label == 120
    big = GalleryIndex.create(ENCODER, expected_faces=1000, registry=registry)
    assert big.retriever.name == index


def test_an_auto_gallery_on_hnswlib_stays_there(registry, monkeypatch):
    monkeypatch.setattr(choice_module, "EXACT_MAX_VALUES", 100 * 16)
    monkeypatch.setattr(choice_module, "scann_available", lambda: False)
    g = GalleryIndex.create(ENCODER, expected_faces=1000, registry=registry)
    assert g.retriever.name == "hnswlib"
    monkeypatch.setattr(choice_module, "scann_available", lambda: True)  # installed later
    data = clustered_faces(150, 16, n_probes=5, seed=1)
    g.add(data.vectors, [str(i) for i in data.identities])
    assert g.retriever.name == "hnswlib"  # not rebuilt behind the user's back


def test_rebuild_switches_retriever_and_keeps_faces(registry):
    g = small_gallery(registry, "hnswlib")
    g.remove_identity("bob")
    g.rebuild("exact")
    assert g.retriever.name == "exact" and len(g) == 5
    assert g.search(basis(2), 1)[0].identity == "cyd"


def test_searches_run_safely_while_faces_are_added(registry, retriever):
    data = clustered_faces(1500, 16, per_identity=3, n_probes=30, seed=2)
    # scann: trained from 200 faces (retrained at 400 and 800), every leaf scanned
    options = {"train_at": 200, "leaves_to_search": 1.0, "recall_target": None}
    options = options if retriever == "scann" else {}
    g = GalleryIndex.create(ENCODER, retriever=retriever, registry=registry, capacity=8, **options)
    g.add(data.vectors[:100], [str(i) for i in data.identities[:100]])
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher():
        try:
            while not stop.is_set():
                for hits in g.search_many(data.probes, k=3):
                    assert len(hits) == 3 and hits[0].score >= hits[-1].score
                    assert all(f.identity == h.identity for h in hits for f in h.faces)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for start in range(100, 1500, 50):
            g.add(
                data.vectors[start : start + 50],
                [str(i) for i in data.identities[start : start + 50]],
            )
            if start % 500 == 0:
                g.remove(range(start - 10, start - 5))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert len(g) == 1500 - 5 * 2
    assert retriever != "scann" or g.retriever.trained
    probe = data.vectors[1499]
    assert g.search_faces(probe, 1)[0].label == 1499


def test_tune_ef_finds_the_breadth_for_a_recall_target(registry):
    data = clustered_faces(3000, 32, per_identity=5, n_probes=100, seed=4)
    g = GalleryIndex.create(
        EncoderInfo("toy", "1", 32),
        retriever="hnswlib",
        registry=registry,
        M=6,
        ef_construction=16,
        ef=10,
    )
    g.add(data.vectors, [str(i) for i in data.identities])
    tuning = g.tune_ef(0.98, k=10, sample=100)
    assert tuning.recall >= 0.98 and g.retriever.ef == tuning.ef > 10
    assert all(r < 0.98 for ef, r in tuning.curve if ef < tuning.ef)
    # the probes (new photos, not stored faces) see about the same recall
    exact = GalleryIndex.create(EncoderInfo("toy", "1", 32), retriever="exact", registry=registry)
    exact.add(data.vectors, [str(i) for i in data.identities])
    found = [{h.label for h in g.search_faces(p, 10)} for p in data.probes]
    truth = [{h.label for h in exact.search_faces(p, 10)} for p in data.probes]
    assert np.mean([len(f & t) / 10 for f, t in zip(found, truth)]) >= 0.95
    with pytest.raises(GalleryError, match="no ef to tune"):
        exact.tune_ef()
    with pytest.raises(GalleryError, match="exact already"):
        exact.tune()


def test_tune_sets_scanns_leaves_for_a_recall_target(registry):
    pytest.importorskip("scann", reason="ScaNN is not installed (pip install scann; Linux only)")
    data = clustered_faces(4000, 32, per_identity=5, n_probes=100, seed=4)
    g = GalleryIndex.create(
        EncoderInfo("toy", "1", 32),
        retriever="scann",
        registry=registry,
        train_at=1000,
        leaves_to_search=0.05,
        recall_target=None,
    )
    g.add(data.vectors, [str(i) for i in data.identities])
    tuning = g.tune(0.97, k=10, sample=100)
    assert tuning.option == "leaves_to_search" and tuning.recall >= 0.97
    assert g.retriever.leaves_to_search == tuning.value > 0.05
    assert all(r < 0.97 for share, r in tuning.curve if share < tuning.value)
    assert g.info()["retriever_params"]["leaves_to_search"] == tuning.value  # saved with it
