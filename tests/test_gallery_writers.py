"""Changing a gallery from the command line: writers wait for each other, nothing added
is an error, a lost manifest is named as such, refused saves leave nothing behind, and
an exact gallery needs no tuning."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facefit import Registry
from facefit.cli import main
from facefit.gallery import GalleryError, GalleryIndex
from facefit.gallery.atomic import GalleryLockTimeout, writer_lock
from tests.plugins.gallery_toys import PatternEncoder, Toys, identity_images

TOYS = ["--detector", "blob"]


@pytest.fixture(scope="module")
def registry():
    return Registry.load(allow=["retrievers", "scann", "milvus"], plugins=[("toys", Toys())])


@pytest.fixture
def gallery(tmp_path, registry):
    """A saved exact gallery of 3 identities, and two new photos of a fourth."""
    faces = identity_images(4, 3, seed=2)
    index = GalleryIndex.create(PatternEncoder, retriever="exact", registry=registry)
    encoder = registry.create_face_encoder("pattern")
    for identity, images in list(faces.items())[:3]:
        index.add(encoder.embed(np.stack([i[32:64, 32:64] for i in images])), identity)
    index.save(tmp_path / "g")
    new = []
    for j, image in enumerate(faces["person3"][:2]):
        Image.fromarray(image).save(tmp_path / f"new{j}.png")
        new.append(tmp_path / f"new{j}.png")
    return tmp_path / "g", new


def run(registry, *args):
    result = CliRunner().invoke(main, [str(a) for a in args], obj={"registry": registry})
    assert "Traceback" not in result.output, result.output
    return result


def test_a_second_writer_waits_for_the_first_and_keeps_both_changes(registry, gallery):
    path, new = gallery
    started = threading.Event()

    def first_writer():  # another process's `gallery add`, from its load to its save
        with writer_lock(path, timeout=5):
            index = GalleryIndex.load(path, registry=registry)
            started.set()
            time.sleep(0.5)
            index.add(np.ones((1, 48), np.float32), ["someone"])
            index.save()

    thread = threading.Thread(target=first_writer)
    thread.start()
    started.wait(5)
    result = run(registry, "gallery", "add", "-g", path, new[0], "--identity", "person3", *TOYS)
    thread.join()
    assert result.exit_code == 0, result.output
    assert "another process is changing this gallery; waiting for it" in result.output
    reopened = GalleryIndex.load(path, registry=registry)
    assert {"someone", "person3"} <= set(reopened.identities()) and len(reopened) == 11


def test_a_writer_gives_up_after_lock_timeout(registry, gallery):
    path, new = gallery
    with writer_lock(path, timeout=1):
        result = run(registry, "gallery", "add", "-g", path, new[0], "--identity", "x",
                     "--lock-timeout", "0.3", *TOYS)  # fmt: skip
    assert result.exit_code == 2
    assert "still changing this gallery after waiting 0.3 s" in result.output
    assert "--lock-timeout" in result.output
    with (
        pytest.raises(GalleryLockTimeout),
        writer_lock(path, timeout=1),
        writer_lock(path, timeout=0.1),
    ):
        pass


def test_adding_nothing_exits_non_zero(registry, gallery, tmp_path):
    path, _ = gallery
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(flat)
    result = run(registry, "gallery", "add", "-g", path, flat, "--identity", "x", *TOYS)
    assert result.exit_code == 2 and "nothing was added; all 1 images were skipped" in result.output
    assert "no face found" in result.output and "--sketch-fallback" in result.output
    assert "sketch_fallback" not in result.output
    blank = run(registry, "gallery", "add", "-g", path, flat, "--identity", " ", *TOYS)
    assert blank.exit_code == 2 and "--identity: give a non-empty name" in blank.output
    assert "identities[0]" not in blank.output


def test_a_lost_manifest_is_named_and_no_rebuild_is_invited(registry, gallery, tmp_path):
    path, _ = gallery
    (path / "manifest.json").unlink()
    with pytest.raises(GalleryError) as caught:
        GalleryIndex.load(path, registry=registry)
    message = str(caught.value)
    assert "holds gallery files (index.g000001" in message and "manifest.json is missing" in message
    assert "do not build a new gallery over this folder" in message
    result = run(registry, "gallery", "info", "-g", path)
    assert result.exit_code == 2 and "Restore manifest.json from a backup" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GalleryError, match=r"an empty folder.*facefit gallery build IMAGES --out"):
        GalleryIndex.load(empty, registry=registry)


def test_force_onto_a_folder_that_is_no_gallery_changes_nothing(registry, gallery, tmp_path):
    _, new = gallery
    photos = tmp_path / "photos" / "person3"
    photos.mkdir(parents=True)
    Image.open(new[0]).save(photos / "a.png")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "case.txt").write_text("keep")
    result = run(registry, "gallery", "build", tmp_path / "photos", "--out", notes, "--force",
                 "--encoder", "pattern", *TOYS, "--no-progress")  # fmt: skip
    assert result.exit_code == 2 and "not a gallery (it holds case.txt)" in result.output
    assert "enrolling" not in result.output and "added" not in result.output  # refused first
    assert sorted(p.name for p in notes.iterdir()) == ["case.txt"]  # no .lock left
    index = GalleryIndex.load(gallery[0], registry=registry)
    with pytest.raises(GalleryError, match="not a gallery"):
        index.save(notes, overwrite=True)
    assert sorted(p.name for p in notes.iterdir()) == ["case.txt"]


def test_tune_on_an_exact_gallery_says_why_and_exits_0(registry, gallery):
    path, _ = gallery
    before = (path / "manifest.json").read_bytes()
    result = run(registry, "gallery", "tune", "-g", path)
    assert result.exit_code == 0, result.output
    assert "searched exactly (retriever 'exact')" in result.output
    assert "there is no search breadth to tune; nothing changed" in result.output
    assert (path / "manifest.json").read_bytes() == before


def test_a_fifo_in_an_identities_csv_is_refused_naming_the_line(tmp_path):
    import os

    from facefit.gallery.build import from_csv

    (tmp_path / "a").mkdir()
    os.mkfifo(tmp_path / "a" / "pipe.jpg")
    (tmp_path / "ids.csv").write_text("image,identity\na/pipe.jpg,alice\n")
    with pytest.raises(GalleryError, match=r"ids\.csv, line 2: .*pipe\.jpg is not a regular file"):
        from_csv(tmp_path, tmp_path / "ids.csv")
    os.mkfifo(tmp_path / "fifo.csv")
    with pytest.raises(GalleryError, match=r"fifo\.csv: not a CSV file but a FIFO"):
        from_csv(tmp_path, tmp_path / "fifo.csv")
