"""The ``scann`` retriever: training, row bookkeeping under removals, persistence."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from facefit import Registry
from facefit.errors import InputError, PluginError
from facefit.gallery import EncoderInfo, GalleryIndex
from facefit.gallery.synthetic import clustered_faces
from facefit_plugins.retrievers import ExactRetriever
from facefit_plugins.retrievers.scann import ScannRetriever, _native_log_to

scann = pytest.importorskip(
    "scann", reason="ScaNN is not installed (pip install scann; Linux only)"
)


def recall_at_10(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)]))


@pytest.fixture(scope="module")
def faces():
    return clustered_faces(6000, 64, n_probes=200, seed=5)


def test_matches_exact_search_on_clustered_faces(faces):
    ann = ScannRetriever(64, train_at=1000, leaves_to_search=0.5, recall_target=None)
    exact = ExactRetriever(64, device="cpu")
    labels = np.arange(len(faces.vectors)) * 2 + 1
    ann.add(labels, faces.vectors)
    exact.add(labels, faces.vectors)
    assert ann.trained and ann.num_leaves == 120  # min(2·√6000, 6000 // 50)
    a_scores, a_labels = ann.search(faces.probes, 10)
    e_scores, e_labels = exact.search(faces.probes, 10)
    assert np.mean(a_labels[:, 0] == e_labels[:, 0]) >= 0.93  # training is not seeded: 0.97 ± 0.01
    assert recall_at_10(a_labels, e_labels) >= 0.9
    same = a_labels == e_labels
    np.testing.assert_allclose(a_scores[same], e_scores[same], atol=1e-5)  # re-scored exactly


def test_exact_until_train_at_then_retrained_as_it_doubles(faces):
    r = ScannRetriever(64, train_at=1000)
    r.add(np.arange(999), faces.vectors[:999])
    assert not r.trained
    r.add(np.arange(999, 1500), faces.vectors[999:1500])
    assert r.trained and r._trained_on == 1500
    r.add(np.arange(1500, 3000), faces.vectors[1500:3000])  # 3000 ≤ 2 × 1500: added to the leaves
    assert r._trained_on == 1500 and len(r) == 3000
    r.add(np.arange(3000, 3001), faces.vectors[3000:3001])  # past double: trained again
    assert r._trained_on == 3001
    r.remove(np.arange(2100))  # below train_at: exact again
    assert not r.trained and len(r) == 901
    _, found = r.search(faces.vectors[2500:2510], 1)
    assert (found[:, 0] == np.arange(2500, 2510)).all()


def test_rows_stay_matched_to_labels_through_removals_and_replacements(faces):
    """ScaNN's rows move as ours do: every score returned is the query's cosine with
    the vector stored under the label returned."""
    rng = np.random.default_rng(0)
    r = ScannRetriever(64, train_at=500, leaves_to_search=0.7, recall_target=None)
    labels = rng.permutation(10_000)[:4000]
    r.add(labels, faces.vectors[:4000])
    for step in range(5):
        gone = rng.choice(np.asarray(list(r._row)), 300, replace=False)
        r.remove(gone)
        back = gone[:100]  # re-added with other vectors
        r.add(back, faces.vectors[4000 + 100 * step : 4100 + 100 * step])
        kept = np.asarray(list(r._row))[:50]
        r.add(kept, faces.vectors[5000 + 50 * step : 5050 + 50 * step])  # replaced in place
    assert r.trained and len(r) == 4000 - 5 * 200
    scores, found = r.search(faces.probes, 10)
    stored = r.get_vectors(np.unique(found))
    lookup = dict(zip(np.unique(found).tolist(), stored))
    expected = np.array(
        [[lookup[x] @ q for x in row] for row, q in zip(found.tolist(), faces.probes)]
    )
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    exact = ExactRetriever(64, device="cpu")
    live = np.asarray(sorted(r._row))
    exact.add(live, r.get_vectors(live))
    assert recall_at_10(found, exact.search(faces.probes, 10)[1]) >= 0.85


def test_too_few_faces_in_the_scanned_leaves_falls_back_to_exact(faces):
    r = ScannRetriever(64, train_at=500, leaves_to_search=0.01, recall_target=None)  # 1 leaf
    r.add(np.arange(2000), faces.vectors[:2000])
    scores, found = r.search(faces.probes[:3], 400)
    assert found.shape == (3, 400) and np.isfinite(scores).all()
    assert len(np.unique(found[0])) == 400


def test_save_and_load_give_the_same_answers(faces, tmp_path):
    r = ScannRetriever(64, train_at=1000, reorder=300)
    r.add(np.arange(3000) + 10, faces.vectors[:3000])
    r.remove(np.array([10, 11, 500]))
    names = r.save(tmp_path, "index.g000001")
    assert not any(n.endswith(".pkl") for n in names)  # no pickle in a gallery
    assert all(n.startswith("index.g000001.") for n in names)
    again = ScannRetriever(64, **r.params())
    again.load(tmp_path, "index.g000001")
    assert again.trained and len(again) == 2997 and again.num_leaves == r.num_leaves
    np.testing.assert_array_equal(again.search(faces.probes, 10)[1], r.search(faces.probes, 10)[1])
    kept = np.array([12, 13, 2000])
    np.testing.assert_allclose(again.get_vectors(kept), r.get_vectors(kept), atol=1e-6)
    again.add(np.array([99_999]), faces.probes[:1])  # a loaded index still takes faces
    assert again.search(faces.probes[0], 1)[1][0, 0] == 99_999


def test_a_small_index_is_saved_as_plain_vectors(tmp_path):
    r = ScannRetriever(16, train_at=1000)
    r.add(np.arange(10), np.eye(16, dtype=np.float32)[:10])
    names = r.save(tmp_path, "index.g1")
    assert sorted(names) == ["index.g1.labels.npy", "index.g1.vectors.npy"]
    again = ScannRetriever(16, train_at=1000)
    again.load(tmp_path, "index.g1")
    assert not again.trained and again.search(np.eye(16)[3], 1)[1][0, 0] == 3


def test_an_assets_file_naming_other_files_is_refused(faces, tmp_path):
    r = ScannRetriever(64, train_at=500)
    r.add(np.arange(1000), faces.vectors[:1000])
    r.save(tmp_path, "index.g1")
    assets = tmp_path / "index.g1.scann.scann_assets.pbtxt"
    assets.write_text(assets.read_text().replace("dataset.npy", "../../etc/passwd", 1))
    with pytest.raises(InputError, match="does not read"):
        ScannRetriever(64, train_at=500).load(tmp_path, "index.g1")


def test_native_log_lines_go_to_logging_not_stderr(faces, capfd, caplog):
    r = ScannRetriever(64, train_at=500)
    with caplog.at_level(logging.DEBUG, logger="facefit_plugins.retrievers.scann"):
        r.add(np.arange(1000), faces.vectors[:1000])
    assert "partition" not in capfd.readouterr().err.lower()
    assert any("trained on 1000 faces" in m for m in caplog.messages)
    with _native_log_to(logging.getLogger("test")):
        os.write(2, b"I0000 00:00:1.0 1 x.cc:1] absl noise\nsomeone else's warning\n")
    err = capfd.readouterr().err
    assert "someone else's warning" in err and "absl noise" not in err


def test_bad_options_are_clear_errors():
    with pytest.raises(PluginError, match="leaves_to_search"):
        ScannRetriever(16, leaves_to_search=0)
    with pytest.raises(PluginError, match="reorder"):
        ScannRetriever(16, reorder=0)
    with pytest.raises(PluginError, match="train_at"):
        ScannRetriever(16, train_at=99)


def test_a_gallery_on_scann_round_trips(faces, tmp_path):
    registry = Registry.load(allow=["retrievers", "scann", "milvus"])
    encoder = EncoderInfo("toy", "1", 64)
    g = GalleryIndex.create(encoder, retriever="scann", registry=registry, train_at=500)
    g.add(faces.vectors[:2000], [f"id{i // 4}" for i in range(2000)])
    assert g.retriever.trained
    before = g.search_many(faces.probes[:20], 5)
    g.save(tmp_path / "g")
    loaded = GalleryIndex.load(tmp_path / "g", encoder=encoder, registry=registry)
    assert loaded.retriever.name == "scann" and loaded.retriever.params() == g.retriever.params()
    assert loaded.search_many(faces.probes[:20], 5) == before
    loaded.rebuild("hnswlib")
    assert loaded.retriever.name == "hnswlib" and len(loaded) == 2000


def test_without_the_package_the_error_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "scann", None)
    monkeypatch.setitem(sys.modules, "scann.scann_ops.py", None)
    with pytest.raises(PluginError, match="pip install scann"):
        ScannRetriever(16)


def test_training_tunes_the_leaves_to_the_recall_target(faces):
    r = ScannRetriever(64, train_at=1000, leaves_to_search=0.05, recall_target=0.95)
    r.add(np.arange(3000), faces.vectors[:3000])
    assert r.trained and r.leaves_to_search > 0.05  # 0.05 finds far less than 0.95
    assert r.params()["leaves_to_search"] == r.leaves_to_search
    exact = ExactRetriever(64, device="cpu")
    exact.add(np.arange(3000), faces.vectors[:3000])
    found, truth = r.search(faces.probes, 10)[1], exact.search(faces.probes, 10)[1]
    assert recall_at_10(found, truth) >= 0.9  # new photos see about the stored faces' recall
    fixed = ScannRetriever(64, train_at=1000, leaves_to_search=0.05, recall_target=None)
    fixed.add(np.arange(3000), faces.vectors[:3000])
    assert fixed.leaves_to_search == 0.05


def test_a_training_scann_refuses_leaves_the_index_exact_and_correct(faces, monkeypatch, caplog):
    r = ScannRetriever(64, train_at=1000)

    def refuse():
        raise RuntimeError("Error initializing searcher: (simulated)")

    monkeypatch.setattr(r, "train", refuse)
    with caplog.at_level(logging.WARNING):
        r.add(np.arange(1500), faces.vectors[:1500])
    assert not r.trained and len(r) == 1500
    assert any("training failed" in m for m in caplog.messages)
    assert (r.search(faces.vectors[:5], 1)[1][:, 0] == np.arange(5)).all()
    monkeypatch.undo()
    r.add(np.arange(1500, 2999), faces.vectors[1500:2999])  # below 2 × 1500: not retried
    assert not r.trained
    r.add(np.arange(2999, 3000), faces.vectors[2999:3000])
    assert r.trained


def test_an_index_scann_cannot_read_is_trained_again_from_the_stored_faces(faces, tmp_path, caplog):
    r = ScannRetriever(64, train_at=500, recall_target=None)
    r.add(np.arange(1000), faces.vectors[:1000])
    r.save(tmp_path, "index.g1")
    (tmp_path / "index.g1.scann.ah_codebook.pb").write_bytes(b"not a codebook")
    again = ScannRetriever(64, train_at=500, recall_target=None)
    with caplog.at_level(logging.WARNING):
        again.load(tmp_path, "index.g1")
    assert any("training it again" in m for m in caplog.messages)
    assert again.trained and len(again) == 1000
    assert (again.search(faces.vectors[:5], 1)[1][:, 0] == np.arange(5)).all()
