"""Benchmark manifests: round trip, and clear errors before any work starts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facefit.errors import InputError
from facefit.evaluation.manifest import (
    GalleryImage,
    Manifest,
    ManifestError,
    Probe,
    load_manifest,
)


def _image(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)


def _write(tmp_path, data):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def bench(tmp_path):
    for name in ("a.png", "b.png", "sketch_a.png", "extra/x.png", "extra/sub/y.png"):
        _image(tmp_path / name)
    return {
        "format": "facefit-benchmark",
        "name": "tiny",
        "gallery": [
            {"id": "a", "identity": "alice", "path": "a.png"},
            {"id": "b", "identity": "bob", "path": "b.png"},
        ],
        "distractors": ["extra"],
        "probes": [
            {
                "id": "p1",
                "identity": "alice",
                "probe_set": "sketch",
                "sketch": "sketch_a.png",
                "groups": {"gender": "female"},
            },
            {"id": "p2", "identity": "bob", "probe_set": "lq16", "lq": "b.png", "lq_size": 16},
            {"id": "p3", "identity": "bob", "text": "a man with a beard"},
        ],
    }


def test_load_round_trip_and_helpers(tmp_path, bench):
    manifest = load_manifest(_write(tmp_path, bench))
    assert manifest.name == "tiny"
    assert manifest.identities == ("alice", "bob")
    assert manifest.probe_sets == ("sketch", "lq16", "text")  # text probe named by modality
    assert manifest.probes[1].synthetic_lq and not manifest.probes[0].synthetic_lq
    assert manifest.true_photo(manifest.probes[0]) == "a.png"
    distractors = manifest.distractor_images()
    assert [d.path for d in distractors] == ["extra/sub/y.png", "extra/x.png"]
    assert len({d.identity for d in manifest.full_gallery()}) == 4
    saved = manifest.save(tmp_path / "copy" / "bench.json")
    again = load_manifest(saved)
    assert again.probes == manifest.probes and again.gallery == manifest.gallery
    assert again.root.resolve() == tmp_path.resolve()
    assert manifest.select(["sketch"]).probe_sets == ("sketch",)
    assert len(manifest.select(limit=1).probes) == 3
    with pytest.raises(ManifestError, match="no probe set 'lq8'"):
        manifest.select(["lq8"])


def test_missing_files_and_unknown_identity_are_all_listed(tmp_path, bench):
    bench["gallery"][1]["path"] = "gone.png"
    bench["probes"][0]["sketch"] = "nope.png"
    bench["probes"][2]["identity"] = "carol"
    bench["distractors"] = ["no-such-folder"]
    with pytest.raises(ManifestError) as info:
        load_manifest(_write(tmp_path, bench))
    message = str(info.value)
    assert "4 problem(s)" in message
    assert "gallery photo 'b': file not found" in message and "gone.png" in message
    assert "probe 'p1': sketch file not found" in message
    assert "probe 'p3': unknown identity 'carol'" in message
    assert "distractor folder not found" in message
    assert isinstance(info.value, InputError)  # the CLI prints it without a traceback


def test_empty_gallery(tmp_path, bench):
    bench["gallery"] = []
    with pytest.raises(ManifestError, match="the gallery is empty"):
        load_manifest(_write(tmp_path, bench))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "not a facefit benchmark"),
        (lambda d: d.update(probes={}), "must be a list"),
        (lambda d: d["probes"][0].update(colour="red"), "unknown key"),
        (lambda d: d["probes"][0].update(lq_size="big"), "'lq_size' must be an integer"),
        (lambda d: d["probes"][1].update(lq_size=12), "lq_size must be one of 8, 16, 32"),
        (lambda d: d["probes"][0].pop("sketch"), "no evidence"),
        (lambda d: d["probes"].append(dict(d["probes"][0])), "id used twice"),
        (lambda d: d["gallery"][0].pop("identity"), "missing 'identity'"),
    ],
)
def test_malformed_manifests(tmp_path, bench, change, message):
    change(bench)
    with pytest.raises(ManifestError, match=message):
        load_manifest(_write(tmp_path, bench))


def test_unreadable_files(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)


def test_in_memory_manifest_validates(tmp_path):
    _image(tmp_path / "a.png")
    manifest = Manifest(
        "mem",
        tmp_path,
        gallery=(GalleryImage("a", "alice", "a.png"),),
        probes=(Probe("p", "alice", "photo", reference="a.png"),),
    )
    assert manifest.validate() is manifest
    assert manifest.probes[0].modalities == ("reference",)
