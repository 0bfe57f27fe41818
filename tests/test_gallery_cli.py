"""``facefit gallery`` end to end, with a weight-free detector and encoder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facefit import Registry
from facefit.cli import main
from tests.plugins.gallery_toys import Toys, ToysV2, identity_images

TOYS = ["--detector", "blob"]


@pytest.fixture(scope="module")
def registry():
    return Registry.load(allow=["retrievers", "scann", "milvus"], plugins=[("toys", Toys())])


@pytest.fixture(scope="module")
def images():
    return identity_images(5, 4, seed=1)


@pytest.fixture
def photos(tmp_path, images):
    """DIR/<identity>/<n>.png for person0..3, plus a flat image and a broken file."""
    root = tmp_path / "photos"
    for identity, faces in list(images.items())[:4]:
        (root / identity).mkdir(parents=True)
        for j, face in enumerate(faces[:3]):
            Image.fromarray(face).save(root / identity / f"{j}.png")
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(root / "person0" / "blank.png")
    (root / "person1" / "broken.jpg").write_bytes(b"not an image")
    return root


def run(registry, *args):
    result = CliRunner().invoke(main, [str(a) for a in args], obj={"registry": registry})
    assert "Traceback" not in result.output, result.output
    return result


def test_build_info_search_add_remove(registry, photos, images, tmp_path):
    gallery = tmp_path / "g"
    result = run(
        registry, "gallery", "build", photos, "--out", gallery, "--encoder", "pattern", *TOYS
    )
    assert result.exit_code == 0, result.output
    assert "enrolling" not in result.output  # no progress bar when stderr is not a terminal
    assert "blank.png: no face found" in result.output
    assert "broken.jpg" in result.output
    assert (
        "added 12 faces of 4 identities; skipped 2 images (1 without a detectable face"
        in result.output
    )

    info = json.loads(run(registry, "gallery", "info", "-g", gallery, "--json").output)
    assert info["faces"] == 12 and info["identities"] == 4
    assert info["encoder"] == {"name": "pattern", "version": "test-1", "dim": 48}
    assert info["retriever"] == "exact" and info["auto_retriever"]
    text = run(registry, "gallery", "info", "-g", gallery).output
    assert "12 of 4 identities" in text and "exact (auto)" in text

    probe = tmp_path / "probe.png"
    Image.fromarray(images["person2"][3]).save(probe)  # a photo not in the gallery
    result = run(registry, "gallery", "search", "-g", gallery, probe, "-k", "2", "--json", *TOYS)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)["results"]
    assert [r["rank"] for r in found] == [1, 2] and found[0]["identity"] == "person2"
    assert len(found[0]["faces"]) == 3 and found[0]["faces"][0]["source"].endswith(".png")
    table = run(registry, "gallery", "search", "-g", gallery, probe, "-k", "3", "--faces", *TOYS)
    assert table.exit_code == 0 and table.output.splitlines()[0].split()[2] == "person2"

    newcomer = tmp_path / "new"
    newcomer.mkdir()
    for j, face in enumerate(images["person4"][:2]):
        Image.fromarray(face).save(newcomer / f"{j}.png")
    result = run(
        registry,
        "gallery",
        "add",
        "-g",
        gallery,
        newcomer,
        "--identity",
        "person4",
        "--no-progress",
        *TOYS,
    )
    assert result.exit_code == 0 and "added 2 faces of 1 identities" in result.output
    again = run(
        registry, "gallery", "add", "-g", gallery, newcomer / "0.png", "--identity", "x", *TOYS
    )
    assert "already in the gallery as 'person4'" in again.output

    result = run(
        registry,
        "gallery",
        "remove",
        "-g",
        gallery,
        "--identity",
        "person2",
        "--image",
        newcomer / "1.png",
    )
    assert result.exit_code == 0, result.output
    assert "removed 4 faces; 10 faces of 4 identities remain" in result.output
    found = json.loads(
        run(registry, "gallery", "search", "-g", gallery, probe, "--json", "-k", "1", *TOYS).output
    )["results"]
    assert found[0]["identity"] != "person2"


def test_build_from_a_csv_with_hnswlib_options(registry, photos, tmp_path):
    table = tmp_path / "ids.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "celeba_identity"])
        for path in sorted(photos.glob("person*/[0-9].png")):
            writer.writerow([path.relative_to(photos).as_posix(), f"id-{path.parent.name}"])
        writer.writerow(["person3/missing.png", "id-x"])
    gallery = tmp_path / "g"
    result = run(
        registry,
        "gallery",
        "build",
        photos,
        "--out",
        gallery,
        "--identities",
        table,
        "--encoder",
        "pattern",
        "--retriever",
        "hnswlib",
        "--ef",
        "33",
        "--M",
        "8",
        "--no-progress",
        *TOYS,
    )
    assert result.exit_code == 0, result.output
    assert "missing.png: file not found" in result.output
    info = json.loads(run(registry, "gallery", "info", "-g", gallery, "--json").output)
    assert info["retriever"] == "hnswlib" and info["retriever_params"]["ef"] == 33
    assert info["retriever_params"]["M"] == 8 and info["identities"] == 4
    tuned_build = run(
        registry,
        "gallery",
        "build",
        photos,
        "--out",
        tmp_path / "g2",
        "--encoder",
        "pattern",
        "--retriever",
        "hnswlib",
        "--recall",
        "0.95",
        "--no-progress",
        *TOYS,
    )
    assert tuned_build.exit_code == 0 and "recall@10 1.0000" in tuned_build.output
    result = run(registry, "gallery", "tune", "-g", gallery, "--recall", "0.9", "-k", "3")
    assert result.exit_code == 0 and "saved" in result.output, result.output
    tuned = json.loads(run(registry, "gallery", "info", "-g", gallery, "--json").output)
    assert tuned["retriever_params"]["ef"] == int(result.output.split("ef=")[-1].split()[0])


def test_build_on_scann_stores_its_options(registry, photos, tmp_path):
    pytest.importorskip("scann", reason="ScaNN is not installed (pip install scann; Linux only)")
    gallery = tmp_path / "g"
    args = ["--encoder", "pattern", "--retriever", "scann", "--leaves-to-search", "0.4"]
    result = run(
        registry,
        "gallery",
        "build",
        photos,
        "--out",
        gallery,
        *args,
        "--recall",
        "0.99",
        "--no-progress",
        *TOYS,
    )
    assert result.exit_code == 0, result.output
    assert "searched exactly; nothing to tune" in result.output  # a few faces: below train_at
    info = json.loads(run(registry, "gallery", "info", "-g", gallery, "--json").output)
    assert info["retriever"] == "scann" and info["retriever_params"]["leaves_to_search"] == 0.4
    tuned = run(registry, "gallery", "tune", "-g", gallery)
    assert tuned.exit_code == 0, tuned.output  # an exact search needs no tuning: said, not failed
    assert "searched exactly (retriever 'scann' until it holds" in tuned.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--retriever", "exact", "--ef", "5"], "hnswlib options"),
        (["--leaves-to-search", "0.5"], "scann option"),
        (["--identities", "{tmp}/columns.csv"], "cannot tell which column holds the image"),
        (["--identities", "{photos}/person0/0.png"], "cannot read the identities CSV"),
        (["--encoder", "nope"], "unknown face encoder 'nope'"),
    ],
)
def test_build_errors_are_one_line(registry, photos, tmp_path, args, message):
    (tmp_path / "columns.csv").write_text("a,b\nx,y\n")
    args = [a.format(photos=photos, tmp=tmp_path) for a in args]
    result = run(
        registry,
        "gallery",
        "build",
        photos,
        "--out",
        tmp_path / "g",
        "--encoder",
        "pattern",
        *TOYS,
        *args,
    )
    assert result.exit_code == 2 and message in result.output, result.output


def test_errors_for_people_not_tracebacks(registry, photos, images, tmp_path):
    gallery = tmp_path / "g"
    run(registry, "gallery", "build", photos, "--out", gallery, "--encoder", "pattern", *TOYS)
    probe = tmp_path / "probe.png"
    Image.fromarray(images["person1"][3]).save(probe)
    flat = tmp_path / "flat.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(flat)

    def fails(*args, registry=registry):
        result = run(registry, "gallery", *args)
        assert result.exit_code == 2, result.output
        return result.output

    assert "already exists" in fails(
        "build", photos, "--out", gallery, "--encoder", "pattern", *TOYS
    )
    assert "k=9 is larger than the gallery (4 identities)" in fails(
        "search", "-g", gallery, probe, "-k", "9", *TOYS
    )
    assert "no face found" in fails("search", "-g", gallery, flat, *TOYS)
    changed = Registry.load(allow=["retrievers", "scann", "milvus"], plugins=[("toys", ToysV2())])
    assert "built with encoder pattern (version test-1" in fails(
        "search", "-g", gallery, probe, *TOYS, registry=changed
    )
    assert "not a facefit gallery" in fails("info", "-g", tmp_path)
    assert "say what to remove" in fails("remove", "-g", gallery)
    for identity in ("person0", "person1", "person2", "person3"):
        run(registry, "gallery", "remove", "-g", gallery, "--identity", identity)
    assert "is empty" in fails("search", "-g", gallery, probe, *TOYS)
    manifest = gallery / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"faces": 0', '"faces": 3'))
    assert "corrupt" in fails("info", "-g", gallery)
