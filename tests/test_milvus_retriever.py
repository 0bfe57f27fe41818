"""Retriever ``milvus`` and galleries in Milvus, on Milvus Lite (and a local Milvus Lite server)."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install 'facefit[milvus]')")
pytest.importorskip(
    "milvus_lite", reason="Milvus Lite is not installed (pip install 'facefit[milvus]')"
)

from facefit import Registry
from facefit.cli import main
from facefit.errors import InputError
from facefit.gallery import (
    EncoderInfo,
    EncoderMismatchError,
    GalleryError,
    GalleryIndex,
)
from facefit.gallery.synthetic import clustered_faces
from facefit.testing import RetrieverTests
from facefit_plugins.retrievers import milvus as milvus_retriever
from facefit_plugins.retrievers.milvus import MilvusRetriever
from facefit_plugins.retrievers.milvus_location import parse_location
from tests.plugins.gallery_toys import Toys, identity_images

ENCODER = EncoderInfo("toy", "1", 32)
_names = itertools.count()


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    """A Milvus Lite file shared by this module's tests (each takes its own collection)."""
    return tmp_path_factory.mktemp("milvus") / "galleries.db"


def fresh(lite) -> str:
    return f"milvus:{lite}/c{next(_names)}"


@pytest.fixture(scope="module")
def registry():
    return Registry.load(allow=["retrievers", "scann", "milvus"])


@pytest.fixture(scope="module")
def faces():
    return clustered_faces(1200, 32, per_identity=4, n_probes=40, seed=5)


def unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class TestMilvusConformance(RetrieverTests):
    plugin_name = "milvus"

    @pytest.fixture(autouse=True)
    def _lite(self, lite):
        self.lite = lite

    def make(self):
        return MilvusRetriever(self.dim, uri=fresh(self.lite))


# -- the retriever ---------------------------------------------------------------------------


def test_remove_replace_and_re_add(lite):
    r = MilvusRetriever(16, uri=fresh(lite), index_type="FLAT")
    data = unit(50)
    r.add(np.arange(50), data)
    r.remove(np.array([3, 7]))
    assert len(r) == 48
    assert 3 not in r.search(data[3:4], 5)[1][0]
    with pytest.raises(InputError, match=r"not in the index: \[3\]"):
        r.remove(np.array([3]))
    r.add(np.array([3]), data[3])  # re-added under its old label
    r.add(np.array([5]), data[9])  # replaced: label 5 now holds face 9's vector
    assert len(r) == 49
    scores, labels = r.search(data[9:10], 2)
    assert set(labels[0]) == {5, 9} and scores[0, 1] == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(r.get_vectors(np.array([5, 3])), data[[9, 3]], atol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r: r.add(np.arange(2), np.zeros((2, 16))), "zero or not finite"),
        (lambda r: r.add(np.arange(3), unit(2)), "3 labels for 2 vectors"),
        (lambda r: r.search(unit(1), 0), "positive integer"),
        (lambda r: r.search(unit(1), 9), "larger than the index"),
        (lambda r: r.get_vectors(np.array([99])), "label 99 is not in the index"),
    ],
)
def test_bad_input_is_a_clear_error(lite, call, message):
    r = MilvusRetriever(16, uri=fresh(lite))
    r.add(np.arange(5), unit(5))
    with pytest.raises(InputError, match=message):
        call(r)


def test_an_empty_collection_says_so(lite):
    with pytest.raises(InputError, match="empty"):
        MilvusRetriever(16, uri=fresh(lite)).search(unit(1), 1)


@pytest.mark.parametrize("index_type", ["HNSW", "IVF_FLAT", "FLAT"])
def test_index_types_find_the_exact_neighbours(lite, faces, index_type):
    r = MilvusRetriever(32, uri=fresh(lite), index_type=index_type, nlist=16, nprobe=16)
    r.add(np.arange(len(faces.vectors)), faces.vectors)
    found = r.search(faces.probes, 10)[1]
    exact = np.argsort(-(faces.probes @ faces.vectors.T), axis=1)[:, :10]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.97, (index_type, recall)
    assert r.params()["index_type"] == index_type


def test_options_are_checked(lite):
    with pytest.raises(Exception, match="unknown index_type 'ANNOY'"):
        MilvusRetriever(16, uri=fresh(lite), index_type="annoy")
    with pytest.raises(Exception, match="M must be a positive integer"):
        MilvusRetriever(16, uri=fresh(lite), M=0)
    with pytest.raises(Exception, match="mode must be"):
        MilvusRetriever(16, uri=fresh(lite), mode="append")
    flat = MilvusRetriever(16, uri=fresh(lite), index_type="FLAT")
    assert not hasattr(flat, "ef")  # nothing for tune() to tune


@pytest.mark.parametrize(
    "text, uri, collection",
    [
        ("milvus://db.example:19531/mugshots", "http://db.example:19531", "mugshots"),
        ("milvus://db.example/mugshots", "http://db.example:19530", "mugshots"),
        ("milvus+https://cloud.example:443/m", "https://cloud.example:443", "m"),
        ("http://10.0.0.5:19530", "http://10.0.0.5:19530", "facefit_gallery"),
        ("milvus:/srv/faces.db/mugshots", "/srv/faces.db", "mugshots"),
        ("milvus:///srv/faces.db/mugshots", "/srv/faces.db", "mugshots"),
        ("/srv/faces.db", "/srv/faces.db", "facefit_gallery"),
    ],
)
def test_locations(text, uri, collection):
    place = parse_location(text)
    assert (place.uri, place.collection) == (uri, collection)
    assert parse_location(place.url) == place  # the canonical URL reads back


@pytest.mark.parametrize(
    "text, message",
    [
        ("milvus://user:secret@host/c", "credentials"),
        ("milvus://host:99999/c", "bad port"),
        ("milvus:faces/c", "no Milvus Lite file"),
        ("milvus://host/bad-name", "not valid"),
        ("ftp://host", "cannot read the location"),
    ],
)
def test_bad_locations_are_clear_errors(text, message):
    with pytest.raises(InputError, match=message):
        parse_location(text)


def test_the_token_comes_from_the_environment_and_is_never_shown(lite, monkeypatch):
    from pymilvus import MilvusClient

    seen, real = [], MilvusClient.__init__

    def init(self, *args, **kwargs):
        seen.append(kwargs.get("token"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(MilvusClient, "__init__", init)
    monkeypatch.setenv("MILVUS_TOKEN", "reader:s3cret")
    r = MilvusRetriever(16, uri=fresh(lite))
    MilvusRetriever(16, uri=r.location, mode="open", token="other")
    assert seen == ["reader:s3cret", "other"]
    assert "s3cret" not in r.location + r.where + json.dumps(r.params())


# -- a gallery in Milvus ------------------------------------------------------------------------


def gallery_of(registry, location, faces, **options):
    g = GalleryIndex.create(ENCODER, retriever="milvus", registry=registry, uri=location, **options)
    n = len(faces.vectors)
    g.add(
        faces.vectors,
        [f"id{i}" for i in faces.identities],
        sources=[f"/mugshots/{i}.png" for i in range(n)],
        sha256s=[f"{i:064x}" for i in range(n)],
        metadata=[{"booking": i} for i in range(n)],
    )
    return g


def test_a_gallery_lives_in_its_collection(registry, lite, faces):
    location = fresh(lite)
    g = gallery_of(registry, location, faces)
    g.remove_identity("id3")
    assert g.save() == location
    exact = GalleryIndex.create(ENCODER, retriever="exact", registry=registry)
    exact.add(faces.vectors, [f"id{i}" for i in faces.identities])
    exact.remove_identity("id3")

    again = GalleryIndex.load(location, registry=registry, encoder=ENCODER)
    assert len(again) == len(exact) and again.num_identities == exact.num_identities
    info = again.info()
    assert info["location"] == f"Milvus Lite file {lite}, collection {location.rsplit('/', 1)[1]}"
    assert info["retriever"] == "milvus" and info["files"] == {} and info["generation"] == 1
    record = again.records([10])[10]
    assert (record.source, record.metadata) == ("/mugshots/10.png", {"booking": 10})
    assert record.added == g.records([10])[10].added  # the enrolment time is kept
    for mine, theirs in zip(again.search_many(faces.probes, 5), exact.search_many(faces.probes, 5)):
        assert [h.identity for h in mine] == [h.identity for h in theirs]
        assert mine[0].score == pytest.approx(theirs[0].score, abs=1e-5)
    # labels are never reused, also after a reload
    assert again.add(faces.vectors[:1], "newcomer")[0] == len(faces.vectors)


def test_saved_to_a_directory_it_is_a_bookmark_to_the_collection(registry, lite, faces, tmp_path):
    location = fresh(lite)
    g = gallery_of(registry, location, faces)
    g.save(tmp_path / "bookmark")
    files = sorted(p.name for p in (tmp_path / "bookmark").iterdir())
    assert [f for f in files if f.startswith("index.")] == ["index.g000001.milvus.json"]
    assert (
        "vector"
        not in (tmp_path / "bookmark" / files[files.index("index.g000001.milvus.json")]).read_text()
    )
    opened = GalleryIndex.load(tmp_path / "bookmark", registry=registry)
    assert opened.info()["location"].endswith(
        f"; metadata copied in directory {tmp_path / 'bookmark'}"
    )
    assert opened.search(faces.vectors[5], 1)[0].identity == f"id{faces.identities[5]}"
    # faces added to the collection later are not in the bookmark's metadata: out of sight
    GalleryIndex.load(location, registry=registry).add(faces.vectors[:2], "later")
    stale = GalleryIndex.load(tmp_path / "bookmark", registry=registry)
    assert "later" not in {h.identity for h in stale.search(faces.vectors[0], 3)}
    with pytest.raises(GalleryError, match="another process changed this gallery"):
        stale.add(faces.vectors[:1], "refused")


def test_tune_sets_milvus_ef_and_save_keeps_it(registry, lite, faces):
    location = fresh(lite)
    g = gallery_of(registry, location, faces, M=8, ef_construction=16, ef=8)
    tuning = g.tune(0.98, k=10, sample=100)
    assert tuning.option == "ef" and tuning.recall >= 0.98 and g.retriever.ef == tuning.value
    g.save()
    assert GalleryIndex.load(location, registry=registry).retriever.ef == tuning.value


def test_another_encoder_or_dimension_is_refused(registry, lite, faces):
    location = fresh(lite)
    gallery_of(registry, location, faces)
    with pytest.raises(EncoderMismatchError, match="built with encoder toy"):
        GalleryIndex.load(location, registry=registry, encoder=EncoderInfo("toy", "2", 32))
    with pytest.raises(GalleryError, match="holds 32-d vectors, this retriever was made for 64-d"):
        MilvusRetriever(64, uri=location, mode="open")
    with pytest.raises(GalleryError, match="already exists"):
        GalleryIndex.create(ENCODER, retriever="milvus", registry=registry, uri=location)
    with pytest.raises(GalleryError, match="no gallery there"):
        GalleryIndex.load(fresh(lite), registry=registry)


def test_a_collection_not_made_by_facefit_is_refused(lite):
    from pymilvus import MilvusClient

    client = MilvusClient(str(lite))
    client.create_collection("someone_elses", dimension=32)
    with pytest.raises(GalleryError, match="not made by facefit"):
        MilvusRetriever(32, uri=f"milvus:{lite}/someone_elses", mode="open")


def test_searches_run_safely_while_faces_are_added(registry, lite):
    data = clustered_faces(900, 32, per_identity=3, n_probes=20, seed=2)
    g = GalleryIndex.create(ENCODER, retriever="milvus", registry=registry, uri=fresh(lite))
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
        for start in range(100, 900, 100):
            g.add(
                data.vectors[start : start + 100], [str(i) for i in data.identities[start:][:100]]
            )
            g.remove(range(start - 10, start - 5))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert len(g) == 900 - 5 * 8
    assert g.search_faces(data.vectors[899], 1)[0].label == 899


# -- faults -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_is_a_clear_error(registry):
    start = time.monotonic()
    with pytest.raises(GalleryError, match=r"cannot connect within 5 s.*running and reachable"):
        GalleryIndex.load(f"milvus://127.0.0.1:{_free_port()}/g", registry=registry, timeout=5)
    assert time.monotonic() - start < 5  # refused at once, not waited out


def test_a_server_that_never_answers_times_out(registry):
    silent = socket.socket()  # accepts connections, never speaks gRPC
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    try:
        start = time.monotonic()
        with pytest.raises(GalleryError, match="cannot connect within 1 s"):
            GalleryIndex.create(
                ENCODER,
                retriever="milvus",
                registry=registry,
                uri=f"milvus://127.0.0.1:{silent.getsockname()[1]}/g",
                timeout=1,
            )
        assert 0.9 < time.monotonic() - start < 10
    finally:
        silent.close()


def test_a_lite_file_in_use_by_another_process_is_a_clear_error(lite):
    location = fresh(lite)
    MilvusRetriever(16, uri=location)  # this process holds the file now
    code = (
        "from facefit_plugins.retrievers.milvus import MilvusRetriever\n"
        f"MilvusRetriever(16, uri={location!r}, mode='open')"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode != 0
    assert "a Milvus Lite file is used by one process at a time" in other.stderr


class _FailingInsert:
    """Lets ``ok`` insert requests through to the real client, then fails like a lost server."""

    def __init__(self, real, ok: int):
        self.real, self.ok = real, ok

    def __call__(self, *args, **kwargs):
        from pymilvus import MilvusException

        if self.ok == 0:
            raise MilvusException(code=2, message="connection lost")
        self.ok -= 1
        return self.real(*args, **kwargs)


def test_a_grpc_timeout_is_a_gallery_error(registry, lite, faces, monkeypatch):
    import grpc

    class Deadline(grpc.RpcError):
        def details(self):
            return "Deadline Exceeded"

    def late(*args, **kwargs):
        raise Deadline()

    g = gallery_of(registry, fresh(lite), faces)
    monkeypatch.setattr(g.retriever._client, "search", late)
    with pytest.raises(GalleryError, match=r"\(Deadline Exceeded\); Milvus did not answer in"):
        g.retriever.search(unit(1, 32, seed=3), k=3)


def test_an_add_that_fails_halfway_adds_nothing(registry, lite, faces, monkeypatch):
    location = fresh(lite)
    g = gallery_of(registry, location, faces)
    monkeypatch.setattr(milvus_retriever, "_BATCH", 50)
    client = g.retriever._client
    monkeypatch.setattr(client, "insert", _FailingInsert(client.insert, ok=2))
    with pytest.raises(GalleryError, match=r"could not write faces \(connection lost"):
        g.add(unit(200, 32, seed=9), "late")  # 2 of 4 requests written, then the server is lost
    assert len(g) == len(faces.vectors) and "late" not in g.identities()
    rows = client.query(g.retriever.collection, filter="", output_fields=["count(*)"])
    assert rows[0]["count(*)"] == len(faces.vectors)  # the written half was deleted
    again = GalleryIndex.load(location, registry=registry)
    assert len(again) == len(faces.vectors) and "late" not in again.identities()


def test_rows_of_a_write_whose_clean_up_failed_are_ignored_then_cleared(
    registry, lite, faces, monkeypatch
):
    location = fresh(lite)
    g = gallery_of(registry, location, faces)
    monkeypatch.setattr(milvus_retriever, "_BATCH", 50)
    client = g.retriever._client
    monkeypatch.setattr(client, "insert", _FailingInsert(client.insert, ok=2))
    monkeypatch.setattr(client, "delete", _FailingInsert(client.delete, ok=0))
    with pytest.raises(GalleryError):
        g.add(unit(200, 32, seed=9), "late")
    monkeypatch.undo()
    leftover = client.query(g.retriever.collection, filter="", output_fields=["count(*)"])
    assert leftover[0]["count(*)"] == len(faces.vectors) + 100  # two requests' rows remain

    again = GalleryIndex.load(location, registry=registry)  # they are not part of it
    assert len(again) == len(faces.vectors) and "late" not in again.identities()
    late = unit(200, 32, seed=9)
    assert all(h.identity != "late" for hits in again.search_many(late[:20], 3) for h in hits)
    again.add(faces.vectors[:2], "next")  # the next add clears them first
    rows = client.query(g.retriever.collection, filter="", output_fields=["count(*)"])
    assert rows[0]["count(*)"] == len(faces.vectors) + 2


def test_a_remove_that_fails_removes_nothing_and_can_be_repeated(
    registry, lite, faces, monkeypatch
):
    location = fresh(lite)
    g = gallery_of(registry, location, faces)
    client, n3 = g.retriever._client, len(g.find(identity="id3"))
    monkeypatch.setattr(client, "delete", _FailingInsert(client.delete, ok=0))
    with pytest.raises(GalleryError, match=r"could not remove faces \(connection lost"):
        g.remove_identity("id3")
    assert "id3" in g.identities() and len(g) == len(faces.vectors)
    monkeypatch.undo()
    assert g.remove_identity("id3") == n3 > 0
    again = GalleryIndex.load(location, registry=registry)
    assert "id3" not in again.identities() and len(again) == len(faces.vectors) - n3


def test_a_second_writer_is_refused_not_merged(registry, lite, faces):
    location = fresh(lite)
    gallery_of(registry, location, faces).save()
    first = GalleryIndex.load(location, registry=registry)
    second = GalleryIndex.load(location, registry=registry)
    first.add(faces.vectors[:3], "first")
    with pytest.raises(GalleryError, match="another process changed this gallery"):
        second.add(faces.vectors[:3], "second")
    assert "second" not in GalleryIndex.load(location, registry=registry).identities()


# -- a Milvus server (milvus-lite's own gRPC server, on this machine) ----------------------------


def _start_server(data, port: int) -> subprocess.Popen:
    """milvus-lite's own gRPC server on this machine, listening on ``port``."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "milvus_lite",
            "server",
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.2)
    process.kill()
    pytest.fail("the local Milvus Lite server did not start within 60 s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    process = _start_server(tmp_path_factory.mktemp("milvus-server"), port)
    yield f"milvus://127.0.0.1:{port}"
    _stop(process)


def test_a_gallery_on_a_server_by_url_with_a_token(registry, server, faces, monkeypatch):
    monkeypatch.setenv("MILVUS_TOKEN", "reader:s3cret")
    location = f"{server}/mugshots"
    g = gallery_of(registry, location, faces)
    g.save()
    again = GalleryIndex.load(location, registry=registry)
    assert len(again) == len(faces.vectors)
    assert (
        again.info()["location"]
        == f"Milvus server {server.replace('milvus', 'http')}, collection mugshots"
    )
    assert again.search(faces.vectors[7], 1)[0].identity == f"id{faces.identities[7]}"
    assert "s3cret" not in json.dumps(again.info())


# -- the command line ---------------------------------------------------------------------------


def run(registry, *args):
    result = CliRunner().invoke(main, [str(a) for a in args], obj={"registry": registry})
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture(scope="module")
def toys():
    return Registry.load(allow=["retrievers", "scann", "milvus"], plugins=[("toys", Toys())])


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    for identity, images in list(identity_images(5, 4, seed=1).items()):
        (root / identity).mkdir(parents=True)
        for j, face in enumerate(images[:3]):
            Image.fromarray(face).save(root / identity / f"{j}.png")
    return root


TOYS = ["--encoder", "pattern", "--detector", "blob", "--no-progress"]


def test_cli_builds_searches_and_describes_a_gallery_in_milvus(toys, photos, lite, tmp_path):
    uri = fresh(lite)
    result = run(toys, "gallery", "build", photos, "--uri", uri, *TOYS, "--M", "8", "--ef", "40")
    assert result.exit_code == 0 and "added 15 faces of 5 identities" in result.output, (
        result.output
    )
    info = run(toys, "gallery", "info", "--uri", uri)
    assert info.exit_code == 0, info.output
    assert f"data        Milvus Lite file {lite}, collection " in info.output
    assert "milvus (index_type=HNSW, M=8, ef_construction=128, ef=40)" in info.output
    probe = photos / "person2" / "1.png"
    found = run(toys, "gallery", "search", "--uri", uri, probe, "-k", "2", "--json",
                "--detector", "blob")  # fmt: skip
    assert json.loads(found.output)["results"][0]["identity"] == "person2"
    removed = run(toys, "gallery", "remove", "--uri", uri, "--identity", "person2")
    assert "12 faces of 4 identities remain" in removed.output
    assert "already exists" in run(toys, "gallery", "build", photos, "--uri", uri, *TOYS).output
    rebuilt = run(toys, "gallery", "build", photos, "--uri", uri, *TOYS, "--force")
    assert rebuilt.exit_code == 0 and "holds 15 faces" in rebuilt.output
    neither = run(toys, "gallery", "info")
    assert neither.exit_code == 2 and "-g DIRECTORY or --uri" in neither.output
    blank = tmp_path / "blank" / "nobody"
    blank.mkdir(parents=True)
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(blank / "0.png")
    empty = fresh(lite)
    failed = run(toys, "gallery", "build", blank.parent, "--uri", empty, *TOYS)
    assert failed.exit_code == 2 and "no face could be enrolled" in failed.output
    assert MilvusRetriever.stored_gallery(empty) is None  # the failed build left no collection


def test_cli_migrates_a_directory_into_milvus_and_back(toys, photos, lite, tmp_path):
    local = tmp_path / "local"
    assert run(toys, "gallery", "build", photos, "--out", local, *TOYS).exit_code == 0
    uri = fresh(lite)
    there = run(toys, "gallery", "migrate", local, "--to", uri, "--no-progress")
    assert there.exit_code == 0, there.output
    assert "15 faces of 5 identities; checked 15 faces: own identity first 1.000" in there.output
    back = tmp_path / "back"
    home = run(toys, "gallery", "migrate", uri, "--to", back, "--retriever", "hnswlib")
    assert home.exit_code == 0, home.output
    original = GalleryIndex.load(local, registry=toys)
    returned = GalleryIndex.load(back, registry=toys)
    assert returned.retriever.name == "hnswlib"
    assert [(r.identity, r.source, r.sha256) for r in returned.find()] == [
        (r.identity, r.source, r.sha256) for r in original.find()
    ]
    refused = run(toys, "gallery", "migrate", local, "--to", uri, "--no-progress")
    assert refused.exit_code == 2 and "already exists" in refused.output
    assert run(toys, "gallery", "migrate", local, "--to", back).exit_code == 2


def test_a_migration_that_fails_leaves_no_collection(toys, photos, lite, tmp_path, monkeypatch):
    from pymilvus import MilvusClient, MilvusException

    local = tmp_path / "local"
    assert run(toys, "gallery", "build", photos, "--out", local, *TOYS).exit_code == 0
    uri = fresh(lite)
    monkeypatch.setattr(milvus_retriever, "_BATCH", 4)
    real, calls = MilvusClient.insert, []

    def insert_then_lose_the_server(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise MilvusException(code=2, message="connection lost")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MilvusClient, "insert", insert_then_lose_the_server)
    failed = run(toys, "gallery", "migrate", local, "--to", uri, "--no-progress")
    assert failed.exit_code == 2 and "connection lost" in failed.output, failed.output
    assert MilvusRetriever.stored_gallery(uri) is None  # the half-made copy was dropped
    assert len(GalleryIndex.load(local, registry=toys)) == 15  # the source is untouched


def test_a_server_that_goes_away_is_a_clear_error_and_loses_nothing(registry, tmp_path, faces):
    port, data = _free_port(), tmp_path / "server-data"
    process = _start_server(data, port)
    location = f"milvus://127.0.0.1:{port}/mugshots"
    try:
        g = gallery_of(registry, location, faces, timeout=3)
        g.save()
    finally:
        _stop(process)
    started = time.monotonic()
    with pytest.raises(GalleryError, match="could not search"):
        g.search(faces.probes[0], 3)
    with pytest.raises(GalleryError, match=r"Milvus server http://127\.0\.0\.1"):
        g.add(faces.vectors[:2], "lost")
    assert time.monotonic() - started < 60
    assert "lost" not in g.identities() and len(g) == len(faces.vectors)
    process = _start_server(data, port)
    try:
        again, waited = None, time.monotonic()
        while again is None:  # gRPC reconnects by itself, after a back-off
            try:
                again = GalleryIndex.load(location, registry=registry)
            except GalleryError:
                if time.monotonic() - waited > 60:
                    raise
                time.sleep(1)
        assert len(again) == len(faces.vectors) and "lost" not in again.identities()
    finally:
        _stop(process)
