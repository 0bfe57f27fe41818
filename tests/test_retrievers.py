"""The built-in retrievers ``exact``, ``hnswlib`` and ``scann``."""

from __future__ import annotations

import numpy as np
import pytest

from facefit.errors import InputError
from facefit.gallery.synthetic import clustered_faces
from facefit.testing import RetrieverTests
from facefit_plugins.retrievers import ExactRetriever, HnswRetriever
from facefit_plugins.retrievers.scann import ScannRetriever

try:
    import scann  # noqa: F401

    HAVE_SCANN = True
except ImportError:
    HAVE_SCANN = False
needs_scann = pytest.mark.skipif(
    not HAVE_SCANN, reason="ScaNN is not installed (pip install scann; Linux only)"
)


class TestExactConformance(RetrieverTests):
    plugin_name = "exact"

    def make(self):
        return ExactRetriever(self.dim, device="cpu")


class TestHnswConformance(RetrieverTests):
    plugin_name = "hnswlib"

    def make(self):
        return HnswRetriever(self.dim, capacity=8)


@needs_scann
class TestScannConformance(RetrieverTests):
    plugin_name = "scann"

    def make(self):
        return ScannRetriever(self.dim, train_at=100, leaves_to_search=1.0, recall_target=None)


def unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=["exact", "hnswlib", pytest.param("scann", marks=needs_scann)])
def make(request):
    if request.param == "exact":
        return lambda dim=16, **kw: ExactRetriever(dim, device="cpu", **kw)
    if request.param == "scann":
        # trained from 100 faces on (exact below); all leaves scanned: these tests check
        # bookkeeping, and on a few hundred random 16-d vectors ScaNN's leaf choice can
        # miss a face's own leaf (recall is tested in test_scann_retriever.py)
        return lambda dim=16, **kw: ScannRetriever(
            dim, train_at=100, leaves_to_search=1.0, recall_target=None, **kw
        )
    return lambda dim=16, **kw: HnswRetriever(dim, **kw)


def test_exact_and_hnswlib_agree_on_clustered_faces():
    data = clustered_faces(4000, 64, per_identity=5, n_probes=200, seed=3)
    exact = ExactRetriever(64, device="cpu")
    ann = HnswRetriever(64, M=16, ef_construction=100, ef=100)
    labels = np.arange(len(data.vectors))
    exact.add(labels, data.vectors)
    ann.add(labels, data.vectors)
    e_scores, e_labels = exact.search(data.probes, 10)
    a_scores, a_labels = ann.search(data.probes, 10)
    recall10 = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(a_labels, e_labels)])
    assert np.mean(a_labels[:, 0] == e_labels[:, 0]) >= 0.99
    assert recall10 >= 0.97
    same = a_labels == e_labels
    np.testing.assert_allclose(a_scores[same], e_scores[same], atol=1e-5)


def test_scores_are_cosines_of_unnormalized_input(make):
    r = make()
    data = unit(50)
    r.add(np.arange(50), data * 7.0)  # scaled: stored normalized
    scores, labels = r.search(data[3] * 0.1, 1)
    assert labels[0, 0] == 3 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_grows_past_its_capacity(make):
    r = make(capacity=4)
    data = unit(300)
    for start in range(0, 300, 7):
        r.add(np.arange(start, min(start + 7, 300)), data[start : start + 7])
    assert len(r) == 300
    assert (r.search(data[:50], 1)[1][:, 0] == np.arange(50)).all()


def test_remove_and_re_add(make):
    r = make()
    data = unit(40)
    r.add(np.arange(40), data)
    r.remove(np.array([5, 6]))
    assert len(r) == 38
    _, labels = r.search(data[5:7], 38)
    assert not np.isin(labels, [5, 6]).any()
    with pytest.raises(InputError, match="5"):
        r.remove(np.array([5]))
    with pytest.raises(InputError):
        r.get_vectors(np.array([6]))
    r.add(np.array([5]), data[5:6])
    assert len(r) == 39 and r.search(data[5], 1)[1][0, 0] == 5


def test_adding_an_existing_label_replaces_its_vector(make):
    r = make()
    data = unit(20)
    r.add(np.arange(10), data[:10])
    r.add(np.array([3]), data[15:16])
    assert len(r) == 10
    np.testing.assert_allclose(r.get_vectors(np.array([3]))[0], data[15], atol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r: r.search(unit(1), 0), "positive"),
        (lambda r: r.search(unit(1), 11), "k=11 is larger than the index .10 items"),
        (lambda r: r.search(unit(1, 8), 1), r"\(n, 16\)"),
        (lambda r: r.search(np.zeros(16), 1), "zero or not finite"),
        (lambda r: r.add(np.array([-1]), unit(1)), "non-negative"),
        (lambda r: r.add(np.array([20, 20]), unit(2)), "twice"),
        (lambda r: r.add(np.array([20]), unit(2)), "1 labels for 2 vectors"),
        (lambda r: r.add(np.array([20]), np.full((1, 16), np.nan)), "not finite"),
    ],
)
def test_bad_input_is_a_clear_error(make, call, message):
    r = make()
    r.add(np.arange(10), unit(10))
    with pytest.raises(InputError, match=message):
        call(r)


def test_empty_index_search_is_a_clear_error(make):
    with pytest.raises(InputError, match="empty"):
        make().search(unit(1), 1)


def test_save_and_load_round_trip_restores_ef(make, tmp_path):
    r = make()
    data = unit(100)
    r.add(np.arange(100) * 3, data)
    r.remove(np.array([0, 3]))
    if isinstance(r, HnswRetriever):
        r.ef = 77
    names = r.save(tmp_path, "index.g1")
    assert all((tmp_path / n).is_file() for n in names)
    again = type(r)(16, **r.params())
    again.load(tmp_path, "index.g1")
    assert len(again) == 98 and again.params() == r.params()
    if isinstance(r, HnswRetriever):
        assert again.ef == 77 and again._index.ef == 77  # hnswlib's file does not keep ef
    np.testing.assert_array_equal(again.search(data[5:9], 3)[1], r.search(data[5:9], 3)[1])


def test_hnswlib_options_are_checked():
    from facefit.errors import PluginError

    with pytest.raises(PluginError, match="M must be"):
        HnswRetriever(16, M=0)


def test_exact_torch_path_matches_numpy():
    torch = pytest.importorskip("torch")
    data = unit(500)
    r = ExactRetriever(16, device="cpu")
    r.add(np.arange(500), data)
    expected = r.search(data[:20], 5)
    r._torch_device = "cuda" if torch.cuda.is_available() else "cpu"  # the torch code path
    got = r.search(data[:20], 5)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)


def test_exact_reads_its_device_as_every_device_setting_is_read():
    from facefit.errors import PluginError

    faces = np.eye(4, dtype=np.float32)
    unknown = ExactRetriever(4, device="tpu")
    unknown.add(np.arange(4), faces)
    with pytest.raises(PluginError, match="use cpu, cuda, cuda:N or auto"):
        unknown.search(faces[:1], 1)
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here")
    missing = ExactRetriever(4, device="cuda")
    missing.add(np.arange(4), faces)
    with pytest.raises(PluginError, match="no CUDA GPU is usable here"):
        missing.search(faces[:1], 1)
    auto = ExactRetriever(4, device="auto")
    auto.add(np.arange(4), faces)
    assert auto.search(faces[:1], 1)[1].tolist() == [[0]]
