"""A process killed while saving never costs the gallery that was there before."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from facefit import Registry
from facefit.gallery import GalleryIndex, persist
from facefit.gallery import atomic as atomic_module
from facefit.gallery.manifest import EncoderInfo
from facefit.gallery.store import MetadataStore
from facefit.gallery.synthetic import clustered_faces

ENCODER = EncoderInfo("toy", "1", 16)
DATA = clustered_faces(400, 16, n_probes=1, seed=5)
CHILD_TIMEOUT = 300
"""Seconds a child may take to reach its kill point (load, add, save on a busy machine)."""
_kill_point = None
"""In a child: its end of the pipe, told when the save reaches the point of the crash."""


@pytest.fixture(scope="module")
def registry():
    return Registry.load(allow=["retrievers", "scann", "milvus"])


def _die() -> None:
    if _kill_point is not None:
        _kill_point.send("kill point")  # the parent waits for this, not for a fixed time
    os.kill(os.getpid(), signal.SIGKILL)


def _half_then_die(path) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    _die()


def _crash_during_index_write(monkeypatch, gallery):
    original = gallery.retriever.save

    def save(directory, stem):
        names = original(directory, stem)
        _half_then_die(directory / names[0])

    monkeypatch.setattr(gallery.retriever, "save", save)


def _crash_during_metadata_write(monkeypatch, gallery):
    original = MetadataStore.save

    def save(self, path):
        original(self, path)
        _half_then_die(path)

    monkeypatch.setattr(MetadataStore, "save", save)


def _crash_before_the_manifest(monkeypatch, gallery):
    monkeypatch.setattr(persist, "atomic_write_bytes", lambda *a: _die())


def _crash_before_the_manifest_rename(monkeypatch, gallery):
    monkeypatch.setattr(atomic_module.os, "replace", lambda *a: _die())


def _crash_after_the_manifest(monkeypatch, gallery):
    calls = []
    original = persist.sweep

    def sweep(directory, keep):
        calls.append(1)
        if len(calls) == 2:  # the sweep after the new manifest is in place
            _die()
        original(directory, keep)

    monkeypatch.setattr(persist, "sweep", sweep)


def _crash_inside_the_scann_write(monkeypatch, gallery):
    real = gallery.retriever._searcher

    class Dying:  # ScaNN's searcher, dying half-way through writing its files
        def serialize(self, directory, relative):
            real.serialize(directory, relative)
            names = sorted(os.listdir(directory))
            _half_then_die(os.path.join(directory, names[len(names) // 2]))

    monkeypatch.setattr(gallery.retriever, "_searcher", Dying())


CRASHES = {
    "during the index write": (_crash_during_index_write, False),
    "during the metadata write": (_crash_during_metadata_write, False),
    "before the manifest": (_crash_before_the_manifest, False),
    "before the manifest rename": (_crash_before_the_manifest_rename, False),
    "after the manifest rename": (_crash_after_the_manifest, True),
    "inside the scann write": (_crash_inside_the_scann_write, False),
}


def _child(path, retriever, crash, kill_point) -> None:
    global _kill_point
    _kill_point = kill_point
    registry = Registry.load(allow=["retrievers", "scann", "milvus"])
    gallery = GalleryIndex.load(path, registry=registry)
    gallery.add(DATA.vectors[200:], [str(i) for i in DATA.identities[200:]])
    mp = pytest.MonkeyPatch()
    CRASHES[crash][0](mp, gallery)
    gallery.save()
    os._exit(0)  # not reached: the crash kills the process


@pytest.mark.parametrize(
    "retriever",
    [
        "exact",
        "hnswlib",
        pytest.param(
            "scann",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("scann") is None,
                reason="ScaNN is not installed (pip install scann; Linux only)",
            ),
        ),
    ],
)
@pytest.mark.parametrize("crash", list(CRASHES))
def test_killed_mid_save_leaves_a_loadable_gallery(registry, tmp_path, retriever, crash):
    if crash == "inside the scann write" and retriever != "scann":
        pytest.skip("a crash inside ScaNN's own writing")
    path = tmp_path / "g"
    # scann: trained from 100 faces, so the save writes ScaNN's index; every leaf scanned
    options = {"train_at": 100, "leaves_to_search": 1.0, "recall_target": None}
    options = options if retriever == "scann" else {}
    g = GalleryIndex.create(ENCODER, retriever=retriever, registry=registry, **options)
    g.add(DATA.vectors[:200], [str(i) for i in DATA.identities[:200]])
    g.save(path)
    # ScaNN's thread pool does not survive a fork (the child can crash in it): spawn
    method = "spawn" if retriever == "scann" else "fork"
    context = multiprocessing.get_context(method)
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(path, retriever, crash, writer))
    process.start()
    writer.close()  # the child holds the only writer: its death ends the pipe
    _wait_for_the_kill_point(process, reader)
    process.join(CHILD_TIMEOUT)
    assert process.exitcode == -signal.SIGKILL, "the child should have been killed mid-save"

    loaded = GalleryIndex.load(path, registry=registry)
    new_saved = CRASHES[crash][1]
    assert len(loaded) == (400 if new_saved else 200)
    assert loaded.search_faces(DATA.vectors[7], 1)[0].label == 7
    # the next save sweeps what the dead one left behind
    loaded.add(DATA.vectors[:1], "late")
    loaded.save()
    manifest = persist.read_manifest(path)
    expected = {f.name for f in manifest.all_files()} | {"manifest.json", ".lock"}
    assert {p.name for p in path.iterdir()} == expected


def _wait_for_the_kill_point(process, reader) -> None:
    """Wait until the child says it reached the crash (however slow the machine), or fail
    saying why it did not: it hung, or it ended without reaching it."""
    try:
        reached = reader.poll(CHILD_TIMEOUT) and reader.recv() == "kill point"
    except EOFError:  # the child ended without a word
        reached = False
    finally:
        reader.close()
    if not reached:
        alive = process.is_alive()
        if alive:
            process.kill()
        process.join()
        why = f"still running after {CHILD_TIMEOUT} s" if alive else f"exit code {process.exitcode}"
        pytest.fail(f"the child never reached its kill point: {why}")


SAVE_LOOP = textwrap.dedent(
    """
    import sys
    import numpy as np
    from facefit import Registry
    from facefit.gallery import GalleryIndex
    registry = Registry.load(allow=["retrievers", "scann", "milvus"])
    rng = np.random.default_rng(int(sys.argv[2]))
    while True:
        g = GalleryIndex.load(sys.argv[1], registry=registry)
        g.add(rng.normal(size=(500, 16)).astype(np.float32), "x")
        g.save()
        print("saved", len(g), flush=True)
    """
)


def test_sigkill_at_random_moments_while_saving(registry, tmp_path):
    path = tmp_path / "g"
    g = GalleryIndex.create(ENCODER, retriever="hnswlib", registry=registry)
    g.add(np.random.default_rng(0).normal(size=(5000, 16)).astype(np.float32), "x")
    g.save(path)
    rng = random.Random(0)
    env = {**os.environ, "FACEFIT_LOAD_PLUGINS": "retrievers"}
    for attempt in range(2):
        child = subprocess.Popen(
            [sys.executable, "-c", SAVE_LOOP, str(path), str(attempt)],
            stdout=subprocess.PIPE,
            env=env,
        )
        # one save done: the loop is saving now (a child that never says so fails the test)
        ready, _, _ = select.select([child.stdout], [], [], 120)
        if not ready:
            child.kill()
            child.wait()
            pytest.fail("the saving child printed nothing in 120 s")
        line = child.stdout.readline().split()
        assert line and line[0] == b"saved", line
        time.sleep(rng.uniform(0.0, 0.3))
        child.kill()
        child.wait()
        loaded = GalleryIndex.load(path, registry=registry)
        assert len(loaded) >= int(line[1]) and (len(loaded) - 5000) % 500 == 0
