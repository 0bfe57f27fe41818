"""Hostile inputs at every entry point: refused naming the input, accepted (and flagged
where used without a face), or skipped and listed — never a traceback, a hang or a
silent ranking.

One table per entry point (``generate``, ``gallery build/add/search``, ``augment``,
``eval``, the web upload); each row is a file of :mod:`tests.hostile_helpers` (a house
drawing, noise, a 1×1 image, a FIFO, a 0-byte file, a truncated JPEG, 16-bit, RGBA
and CMYK faces, a decompression bomb) or an over-long text, an existing output
folder, or a plugin that calls ``sys.exit`` at import. Faces are found by YuNet
(skipped when its model file is not installed); encoders and generators are the
weight-free toys of ``tests/plugins``, so the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from facefit.cli import main
from tests.hostile_helpers import KINDS, LONG_TEXT, write_kind

REFUSED, ACCEPTED = "refused", "accepted"

# kind → (outcome, text the message must hold); the message must also name the file
IMAGE_VERDICTS = {
    "house": (REFUSED, "no face"),
    "noise": (REFUSED, "no face"),
    "one-pixel": (REFUSED, "1x1|no face"),
    "fifo": (REFUSED, "not a file but a FIFO"),
    "empty": (REFUSED, "empty file (0 bytes)"),
    "truncated": (REFUSED, "damaged or truncated"),
    "grey16": (ACCEPTED, ""),
    "rgba": (ACCEPTED, ""),
    "cmyk": (ACCEPTED, ""),
    "bomb": (REFUSED, "decompression bomb"),
    "face": (ACCEPTED, ""),
}


@pytest.fixture(scope="module")
def yunet():
    from facefit import weights
    from facefit.errors import WeightsNotFoundError

    try:
        weights.resolve("yunet")
    except WeightsNotFoundError as exc:
        pytest.skip(f"YuNet is not installed ({exc}); run `facefit models install`")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file of every hostile kind (and a usable face) in one folder."""
    folder = tmp_path_factory.mktemp("hostile")
    return {kind: write_kind(folder, kind, seed=7) for kind in KINDS}  # photos not in galleries


def says(output: str, text: str) -> bool:
    """Whether ``output`` holds one of the ``|``-separated alternatives of ``text``."""
    return any(option in output for option in text.split("|"))


def invoke(registry, *args, timeout: float = 60):
    """Run the CLI in a thread so a hang fails the test instead of stalling CI."""
    box = {}

    def target():
        box["result"] = CliRunner().invoke(main, [str(a) for a in args], obj={"registry": registry})

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"facefit {' '.join(map(str, args[:3]))} hung"
    result = box["result"]
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# -- facefit generate ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_setup(tmp_path_factory, yunet):
    from tests.pipeline_helpers import save_model, toy_gallery, toy_registry

    root = tmp_path_factory.mktemp("generate")
    registry = toy_registry()
    toy_gallery(registry).save(root / "gallery")
    (root / "pipeline.toml").write_text(
        f'[pipeline]\nmodel = "{save_model(root / "model")}"\nrounds = 1\ncandidates = 1\n'
        'steps = 1\n\n[face_detector]\nplugin = "yunet"\n\n[face_encoder]\nplugin = "tiny-face"\n'
    )
    return root, registry


GENERATE_ROWS = [(f"--sketch {k}", "--sketch", k) for k in KINDS if k != "face"] + [
    (f"--reference {k}", "--reference", k) for k in ("house", "grey16", "rgba", "cmyk", "face")
]


@pytest.mark.parametrize(
    ("flag", "kind"), [r[1:] for r in GENERATE_ROWS], ids=[r[0] for r in GENERATE_ROWS]
)
def test_generate(pipeline_setup, files, tmp_path, flag, kind):
    root, registry = pipeline_setup
    outcome, text = IMAGE_VERDICTS[kind]
    out = tmp_path / "run"
    result = invoke(
        registry, "generate", "--config", root / "pipeline.toml", "-g", root / "gallery",
        flag, files[kind], "--out", out, "--no-progress",
    )  # fmt: skip
    if outcome == REFUSED:
        assert result.exit_code == 2, result.output
        assert f"{files[kind]}: " in result.output and says(result.output, text), result.output
        assert "ranked identities" not in result.output and not out.exists()
    else:
        assert result.exit_code == 0, result.output
        assert "ranked identities" in result.output and "CAUTION" not in result.output
        assert json.loads((out / "result.json").read_text())["confidence"] == "normal"


def test_generate_refuses_an_over_long_text(pipeline_setup, tmp_path):
    root, registry = pipeline_setup
    result = invoke(
        registry, "generate", "--config", root / "pipeline.toml", "--text", LONG_TEXT,
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert result.exit_code == 2 and "--text: the description is 11,399 characters" in result.output
    assert not (tmp_path / "run").exists()


def test_generate_refuses_an_existing_output_folder(pipeline_setup, files, tmp_path):
    root, registry = pipeline_setup
    out = tmp_path / "earlier"
    args = ["generate", "--config", root / "pipeline.toml", "--reference", files["face"]]
    assert invoke(registry, *args, "--out", out, "--no-progress").exit_code == 0
    before = (out / "result.json").read_bytes()
    result = invoke(registry, *args, "--seed", 5, "--out", out, "--no-progress")
    assert result.exit_code == 2 and f"{out}" in result.output and "--force" in result.output
    assert (out / "result.json").read_bytes() == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "case.txt").write_text("keep")
    refused = invoke(registry, *args, "--out", other, "--force")
    assert refused.exit_code == 2 and "not a facefit output folder" in refused.output
    assert (other / "case.txt").read_text() == "keep"


# -- a plugin that calls sys.exit() while it imports ------------------------------------


@pytest.fixture
def exiting_plugin(tmp_path, monkeypatch):
    from facefit.plugins import ENV_LOAD_PLUGINS
    from facefit.testing import fake_distribution

    fake_distribution(tmp_path, "exit-faces", "0.1.0", {"exits": "tests.plugins.exits_on_import"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(ENV_LOAD_PLUGINS, "exits")


def test_a_plugin_exiting_at_import_leaves_generate_and_search_working(
    exiting_plugin, pipeline_setup, files, tmp_path
):
    from tests.pipeline_helpers import toy_registry

    root, _ = pipeline_setup
    registry = toy_registry()  # entry points too: the exiting plugin is among them
    assert [f.plugin for f in registry.failures] == ["exits"]
    assert "sys.exit(3)" in registry.failures[0].error
    result = invoke(
        registry, "generate", "--config", root / "pipeline.toml", "-g", root / "gallery",
        "--reference", files["face"], "--out", tmp_path / "run", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0 and "ranked identities" in result.output, result.output
    listing = invoke(None, "plugins")
    assert listing.exit_code == 0 and "FAILED plugin 'exits'" in listing.output


# -- facefit gallery build / add / search ------------------------------------------------


@pytest.fixture(scope="module")
def gallery_registry():
    from facefit import Registry
    from tests.plugins.gallery_toys import Toys

    return Registry.load(
        allow=["yunet", "retrievers", "scann", "milvus"], plugins=[("toys", Toys())]
    )


GALLERY = ["--detector", "yunet"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, gallery_registry, yunet):
    """A gallery built from 3 identities of faces plus every hostile kind as identity 'mixed'."""
    root = tmp_path_factory.mktemp("gallery")
    photos = root / "photos"
    for i in range(3):
        write_kind(photos / f"person{i}", "face", seed=i)
    for kind in KINDS:
        write_kind(photos / "mixed", kind, seed=3)
    result = invoke(
        gallery_registry, "gallery", "build", photos, "--out", root / "g", "--encoder", "pattern",
        *GALLERY, "--no-progress",
    )  # fmt: skip
    return root, result


BUILD_ROWS = [k for k in KINDS if k != "fifo"]


@pytest.mark.parametrize("kind", BUILD_ROWS)
def test_gallery_build_skips_and_lists_or_adds(built, kind):
    _, result = built
    outcome, text = IMAGE_VERDICTS[kind]
    listed = [line for line in result.output.splitlines() if f"mixed/{kind}." in line]
    if outcome == REFUSED:
        assert len(listed) == 1 and "skipped" in listed[0] and says(listed[0], text), result.output
    else:
        assert not listed, result.output


def test_gallery_build_leaves_out_a_fifo_and_counts_the_rest(built, caplog):
    root, result = built
    assert result.exit_code == 0, result.output
    usable = sum(1 for k, (o, _) in IMAGE_VERDICTS.items() if o == ACCEPTED)
    assert f"added {3 + usable} faces of 4 identities" in result.output  # 3 people + 'mixed'
    assert "fifo" not in result.output.replace("not a file but a FIFO", "")  # left out, not read
    from facefit.gallery.build import images_under

    with caplog.at_level("WARNING", logger="facefit.gallery.build"):
        found = images_under(root / "photos" / "mixed")
    assert all(p.is_file() for p in found) and "fifo.jpg: not a regular file" in caplog.text


@pytest.mark.parametrize("kind", list(KINDS))
def test_gallery_add(built, gallery_registry, files, tmp_path, kind):
    import shutil

    root, _ = built
    gallery = tmp_path / "g"
    shutil.copytree(root / "g", gallery)
    outcome, text = IMAGE_VERDICTS[kind]
    result = invoke(gallery_registry, "gallery", "add", "-g", gallery, files[kind],
                    "--identity", "newcomer", *GALLERY, "--no-progress")  # fmt: skip
    if outcome == REFUSED:
        assert result.exit_code == 2, result.output
        assert f"skipped {files[kind]}: " in result.output and says(result.output, text)
        assert "nothing was added" in result.output
    else:
        assert result.exit_code == 0 and "added 1 faces of 1 identities" in result.output


@pytest.mark.parametrize("kind", list(KINDS))
def test_gallery_search(built, gallery_registry, files, kind):
    root, _ = built
    outcome, text = IMAGE_VERDICTS[kind]
    result = invoke(gallery_registry, "gallery", "search", "-g", root / "g", files[kind],
                    "-k", "3", *GALLERY)  # fmt: skip
    if outcome == REFUSED:
        assert result.exit_code == 2 and f"{files[kind]}: " in result.output, result.output
        assert says(result.output, text) or "no face found" in result.output
        assert "sketch_fallback" not in result.output  # CLI flags, not Python parameters
    else:
        assert result.exit_code == 0 and len(result.output.splitlines()) == 3, result.output


# -- facefit augment -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def augment_setup(tmp_path_factory, yunet):
    from facefit import Registry
    from tests.generator_helpers import tiny_generator
    from tests.plugins import generator_toys
    from tests.plugins.gallery_toys import Toys

    root = tmp_path_factory.mktemp("augment")
    tiny_generator(3, identity_dim=48, face_encoder="pattern").save_pretrained(root / "model")
    mugs = root / "mugs"
    for kind in KINDS:
        write_kind(mugs / kind, kind, seed=1)  # one identity per kind
    registry = Registry.load(
        allow=["yunet", "conditioners", "samplers", "eager", "retrievers", "scann", "milvus"],
        plugins=[("generator-toys", generator_toys), ("gallery-toys", Toys())],
    )
    return root, registry


def augment(root, registry, out, *extra):
    return invoke(
        registry, "augment", root / "mugs", "--out", out, "--model", root / "model",
        "--per-identity", 1, "--styles", "0", "--steps", 1, "--device", "cpu",
        "--detector", "yunet", "--encoder", "pattern", "--min-identity-cosine", -1,
        "--no-progress", *extra,
    )  # fmt: skip


def test_augment_skips_and_lists_hostile_mugshots(augment_setup, tmp_path):
    root, registry = augment_setup
    out = tmp_path / "sketches"
    result = augment(root, registry, out)
    assert result.exit_code == 0, result.output
    skipped = {
        s["identity"]: s["reason"]
        for s in json.loads((out / "manifest.json").read_text())["skipped"]
    }
    for kind, (outcome, text) in IMAGE_VERDICTS.items():
        if kind == "fifo":
            assert kind not in skipped  # left out of the listing of images, never read
        elif outcome == REFUSED:
            assert kind in skipped and (says(skipped[kind], text) or "no face" in skipped[kind])
            assert f"skipped {kind}/" in result.output
        else:
            assert kind not in skipped
    made = json.loads((out / "annotations.json").read_text())
    assert len(made) == sum(1 for o, _ in IMAGE_VERDICTS.values() if o == ACCEPTED)

    other = tmp_path / "not-augment"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    refused = augment(root, registry, other)
    assert refused.exit_code == 2 and "not an augmentation output" in refused.output
    assert (other / "notes.txt").read_text() == "keep"


# -- facefit eval ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_registry(tmp_path_factory):
    import sys

    from facefit import Registry
    from facefit.testing import fake_distribution

    site = tmp_path_factory.mktemp("site")
    fake_distribution(site, "facefit-eval-codes", "0.1", {"eval-codes": "tests.plugins.eval_codes"})
    sys.path.insert(0, str(site))
    try:
        return Registry.load(allow={"eval-codes"})
    finally:
        sys.path.remove(str(site))


# the code detector/encoder read pixel codes, so only file-level hostility is meaningful here
EVAL_ROWS = {
    "fifo": "probe 'photo1_0003/sketch'",
    "empty": "1 probe(s) failed (InputError)",
    "truncated": "1 probe(s) failed (InputError)",
    "bomb": "1 probe(s) failed (InputError)",
}


@pytest.mark.parametrize("kind", list(EVAL_ROWS))
def test_eval(eval_registry, tmp_path, kind):
    import os

    from tests.test_eval_harness import make_fs2k

    bench = make_fs2k(tmp_path / "fs2k")
    target = bench / "sketch" / "photo1_0003.png"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    else:
        write_kind(target.parent, kind, stem="photo1_0003").rename(target)
    out = tmp_path / "out"
    result = invoke(eval_registry, "eval", bench, "--detector", "code", "--encoder", "code",
                    "--out", out, "--no-progress", "--contact-sheet", "0", "--modes", "direct")  # fmt: skip
    assert EVAL_ROWS[kind] in result.output, result.output
    if kind == "fifo":
        assert result.exit_code == 2 and not out.exists()  # refused before any work
    else:
        assert result.exit_code == 0  # the probe counts as a miss, listed in the report
        rows = [json.loads(line) for line in (out / "probes.jsonl").read_text().splitlines()]
        failed = [r for r in rows if r.get("error")]
        assert failed and all("photo1_0003" in json.dumps(r) for r in failed)


def test_eval_refuses_an_existing_output_folder(eval_registry, tmp_path):
    from tests.test_eval_harness import make_fs2k

    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    result = invoke(eval_registry, "eval", make_fs2k(tmp_path / "fs2k"), "--detector", "code",
                    "--encoder", "code", "--out", out)  # fmt: skip
    assert result.exit_code == 2 and "already holds files" in result.output
    assert (out / "results.json").read_text() == "{}"


# -- the web app's evidence upload -------------------------------------------------------------


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
    from fastapi.testclient import TestClient

    from tests.serve_helpers import bearer, make_app

    app = make_app(tmp_path_factory.mktemp("serve"), load_models=False)
    with TestClient(app) as client:
        headers = bearer(client, "alice")
        case = client.post("/api/v1/cases", json={"title": "hostile"}, headers=headers).json()
        yield client, headers, case["id"]


# uploads are bytes: no FIFO; a face is judged when a run starts (see the generate table)
UPLOAD_ROWS = {
    "house": (201, ""),
    "noise": (201, ""),
    "one-pixel": (400, "too small"),
    "empty": (400, "upload.png"),
    "truncated": (400, "damaged or truncated"),
    "grey16": (201, ""),
    "rgba": (201, ""),
    "cmyk": (201, ""),
    "bomb": (400, "decompression bomb"),
}


@pytest.mark.parametrize("kind", list(UPLOAD_ROWS))
def test_web_upload(web, files, kind):
    from tests.serve_helpers import upload

    client, headers, case_id = web
    status, text = UPLOAD_ROWS[kind]
    response = upload(client, headers, case_id, "sketch", data=files[kind].read_bytes())
    assert response.status_code in ((200, 201) if status == 201 else (status,)), response.text
    if status == 400:
        assert "upload.png" in response.json()["detail"] and text in response.json()["detail"]


def test_web_upload_refuses_an_over_long_description(web):
    from tests.serve_helpers import upload

    client, headers, case_id = web
    response = upload(client, headers, case_id, "text", text=LONG_TEXT)
    assert response.status_code == 400 and "characters" in response.json()["detail"]


def test_every_kind_has_a_verdict():
    assert set(IMAGE_VERDICTS) == set(KINDS)
    assert Path(__file__).name == "test_hostile_inputs.py"
