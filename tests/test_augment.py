"""``facefit augment``: mugshots → FS2K-format synthetic sketches, filtered, resumable.

A tiny random generator saved to disk and weight-free parts (``fixed-landmarks``
finds one face filling any image, ``blob`` none in a flat image, ``pattern`` embeds
a crop as its 4×4 grid of mean colours) make every run take about a second. The
same path on the real YuNet + SFace and the bundled demo faces is checked at the
end when those model files are installed.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facefit.augment import AugmentSettings, OutputFolder, augment, read_mugshots, sample_seed
from facefit.augment.plan import parse_styles, plan_job
from facefit.augment.worker import sample_batch, sketch_for_encoder
from facefit.cli import main
from facefit.errors import InputError
from tests.generator_helpers import single_thread, tiny_generator  # noqa: F401 (fixture)
from tests.plugins.gallery_toys import save_mugshots

DEMO = Path(__file__).resolve().parents[1] / "sdk" / "facefit" / "demo_data"
TOYS = {"detector": "fixed-landmarks", "filter_encoder": "pattern"}


@pytest.fixture(scope="module")
def registry():
    from facefit import Registry
    from tests.plugins import generator_toys
    from tests.plugins.gallery_toys import Toys

    return Registry.load(
        allow=["conditioners", "samplers", "eager", "retrievers"],
        plugins=[("generator-toys", generator_toys), ("gallery-toys", Toys())],
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("augment")


@pytest.fixture(scope="module")
def model_dir(root):
    """A tiny generator conditioned on ``pattern`` identities (48-d) and ``tiny-text``."""
    path = root / "model"
    tiny_generator(3, identity_dim=48, face_encoder="pattern").save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def mugshots(root):
    """MUGS/<person>/<n>.png: four identities, the first with two mugshots."""
    return save_mugshots(root / "mugs")


def settings(model_dir, **changes):
    values = {
        "model": str(model_dir),
        "per_identity": 3,
        "styles": "0,any",
        "steps": 2,
        "min_identity_cosine": -1.0,
        "batch_size": 4,
        "shard_size": 2,
        "device": "cpu",
        **TOYS,
        **changes,
    }
    return AugmentSettings(**values)


def annotations(out: Path) -> list[dict]:
    return json.loads((out / "annotations.json").read_text(encoding="utf-8"))


def dataset_files(out: Path) -> dict[str, bytes]:
    """Everything of the data set proper (not the manifest's timings or the unit files)."""
    files = {"annotations.json": (out / "annotations.json").read_bytes()}
    for folder in ("photo", "sketch"):
        files.update({f"{folder}/{p.name}": p.read_bytes() for p in (out / folder).iterdir()})
    return files


@pytest.fixture(scope="module")
def full_run(root, mugshots, model_dir, registry):
    """One uninterrupted run keeping every sketch: the reference the other tests compare to."""
    out = root / "fs2k-train"
    report = augment(mugshots, out, settings(model_dir), registry=registry, progress=False)
    return out, report


# -- the output --------------------------------------------------------------------------------


def test_output_is_an_fs2k_folder_that_facefit_reads(full_run):
    from facefit.datasets.splits import load_fs2k_annotations
    from facefit.evaluation.readers import read_fs2k
    from facefit.imaging.images import load_image

    out, report = full_run
    records = annotations(out)
    assert records == load_fs2k_annotations(out.parent)  # out is named fs2k-train
    manifest = read_fs2k(out, probe_sets=("sketch",))
    assert len(manifest.probes) == len(records) == 12
    for record in records:
        assert list(record)[:4] == ["id", "photo", "sketch", "style"]
        photo, sketch = load_image(out / record["photo"]), load_image(out / record["sketch"])
        assert photo.shape == sketch.shape == (16, 16, 3)  # pixel-aligned pair, as in FS2K
    assert len({r["id"] for r in records}) == len(records)
    assert report.made == 2 and report.already_done == 0


def test_n_sketches_per_identity_across_mugshots_and_styles(full_run, mugshots):
    out, report = full_run
    records = annotations(out)
    by_identity: dict[str, list[dict]] = {}
    for record in records:
        by_identity.setdefault(record["identity"], []).append(record)
    assert {i: len(r) for i, r in by_identity.items()} == {f"person{i}": 3 for i in range(4)}
    person0 = sorted(by_identity["person0"], key=lambda r: r["sample"])
    # samples alternate over the identity's two mugshots; styles 0, any, 0
    assert [r["source"] for r in person0] == ["person0/0.png", "person0/1.png", "person0/0.png"]
    assert [(r["style"], r["domain"]) for r in person0] == [
        (0, "sketch-style0"),
        (-1, "sketch"),
        (0, "sketch-style0"),
    ]
    counts = report.counts
    assert counts["requested"] == counts["generated"] == counts["kept"] == 12
    assert counts["dropped"] == 0 and counts["identities"] == 4


def test_manifest_records_provenance(full_run, mugshots, model_dir):
    from facefit.files import sha256_file

    out, _ = full_run
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete"
    job = manifest["job"]
    assert {i["key"]: i["sha256"] for i in job["inputs"]} == {
        p.relative_to(mugshots).as_posix(): sha256_file(p) for p in mugshots.rglob("*.png")
    }
    assert job["model"]["files"]["config.json"] == sha256_file(model_dir / "config.json")
    assert {p["name"] for p in job["plugins"]} >= {"fixed-landmarks", "pattern", "ddpm", "eager"}
    assert all(p["version"] is not None for p in job["plugins"])
    assert job["settings"]["steps"] == 2 and "device" not in job["settings"]
    assert manifest["timings"]["generation_seconds_total"] > 0
    assert set(manifest["timings"]["shard_seconds"]) == {"shard-000000", "shard-000001"}
    assert manifest["runtime"]["devices"] == ["cpu"]


def test_seeds_come_from_identity_image_and_sample(full_run, root, mugshots, model_dir, registry):
    out, _ = full_run
    records = annotations(out)
    for record in records:
        assert record["seed"] == sample_seed(
            0, record["identity"], record["source"], record["sample"]
        )
    # the same identity alone, in a shard and batch of its own, gets the same sketches
    alone = root / "alone"
    (alone / "person2").mkdir(parents=True)
    shutil.copy(mugshots / "person2" / "0.png", alone / "person2" / "0.png")
    augment(alone, root / "alone-out", settings(model_dir), registry=registry, progress=False)
    solo = annotations(root / "alone-out")
    mine = [r for r in records if r["identity"] == "person2"]
    assert [r["seed"] for r in solo] == [r["seed"] for r in mine]
    for a, b in zip(solo, mine):
        assert (root / "alone-out" / a["sketch"]).read_bytes() == (out / b["sketch"]).read_bytes()
    # another base seed, other sketches
    augment(alone, root / "seed1", settings(model_dir, seed=1), registry=registry, progress=False)
    other = annotations(root / "seed1")
    assert [r["seed"] for r in other] != [r["seed"] for r in solo]
    assert (root / "seed1" / other[0]["sketch"]).read_bytes() != (
        root / "alone-out" / solo[0]["sketch"]
    ).read_bytes()


# -- the quality filter ------------------------------------------------------------------------


def test_filter_drops_exactly_the_sketches_below_the_threshold(
    full_run, root, mugshots, model_dir, registry
):
    out, _ = full_run
    everything = annotations(out)
    cosines = sorted(r["identity_cosine"] for r in everything)
    threshold = (cosines[5] + cosines[6]) / 2  # splits the twelve sketches 6 / 6
    assert cosines[5] < threshold < cosines[6]
    filtered = root / "filtered"
    report = augment(
        mugshots,
        filtered,
        settings(model_dir, min_identity_cosine=threshold),
        registry=registry,
        progress=False,
    )
    kept = annotations(filtered)
    assert {r["id"] for r in kept} == {
        r["id"] for r in everything if r["identity_cosine"] >= threshold
    }
    expected_drops: dict[str, int] = {}
    for r in everything:
        if r["identity_cosine"] < threshold:
            expected_drops[r["identity"]] = expected_drops.get(r["identity"], 0) + 1
    assert report.dropped_by_identity == expected_drops
    assert report.counts["dropped"] == 6 and report.counts["kept"] == 6
    manifest = json.loads((filtered / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(d["identity_cosine"] for d in manifest["dropped"]) == cosines[:6]
    for r in kept:  # same seeds, same sketches, whatever the filter
        assert (filtered / r["sketch"]).read_bytes() == (out / r["sketch"]).read_bytes()
    sketch_files = {p.name for p in (filtered / "sketch").iterdir()}
    assert sketch_files == {Path(r["sketch"]).name for r in kept}


def test_the_recorded_cosine_is_the_encoders_cosine_of_the_saved_sketch(full_run, registry):
    from facefit.imaging.faces import align_landmarks, template
    from facefit.imaging.images import load_image

    out, _ = full_run
    encoder = registry.create_face_encoder("pattern")
    for record in annotations(out)[:4]:
        sketch = load_image(out / record["sketch"])
        crop = load_image(out / record["photo"])
        sketch_vector = encoder.embed(sketch_for_encoder(sketch[None], 32))[0]
        # fixed-landmarks puts the template on the whole image: the crop is a resize
        mugshot = load_image(Path(read_source(out, record)))
        photo_vector = encoder.embed(align_landmarks(mugshot, template(48), 32)[None])[0]
        assert float(sketch_vector @ photo_vector) == pytest.approx(
            record["identity_cosine"], abs=1e-5
        )
        assert crop.shape == (16, 16, 3)


def read_source(out: Path, record: dict) -> str:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return next(i["path"] for i in manifest["job"]["inputs"] if i["key"] == record["source"])


def test_sketch_for_encoder_is_grey_in_three_channels():
    rng = np.random.default_rng(0)
    sketches = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    out = sketch_for_encoder(sketches, 32)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


# -- resuming ----------------------------------------------------------------------------------


def test_an_interrupted_run_resumes_and_gives_the_same_files(
    full_run, root, mugshots, model_dir, registry
):
    reference, _ = full_run
    out = root / "interrupted"

    def crash(unit):
        raise KeyboardInterrupt  # the process is stopped after its first shard

    with pytest.raises(KeyboardInterrupt):
        augment(
            mugshots, out, settings(model_dir), registry=registry, progress=False, on_shard=crash
        )
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "running" and not (out / "annotations.json").exists()
    first_unit = (out / "units" / "shard-000000.json").read_bytes()
    # the second shard died half-way: one of its images written, its unit file not
    later = [r for r in annotations(reference) if r["identity"] in ("person2", "person3")]
    (out / "sketch").mkdir(exist_ok=True)
    (out / later[0]["sketch"]).write_bytes(b"half an image")

    report = augment(mugshots, out, settings(model_dir), registry=registry, progress=False)
    assert (report.made, report.already_done) == (1, 1)
    assert (out / "units" / "shard-000000.json").read_bytes() == first_unit  # not redone
    assert dataset_files(out) == dataset_files(reference)

    # a truncated file of a committed shard makes that shard be made again, identically
    damaged = out / annotations(reference)[0]["sketch"]
    damaged.write_bytes(b"damaged")
    leftover = out / "sketch" / ".x.png.tmp-123-abcd"  # a killed writer's temporary file
    leftover.write_bytes(b"partial")
    again = augment(mugshots, out, settings(model_dir), registry=registry, progress=False)
    assert (again.made, again.already_done) == (1, 1)
    assert dataset_files(out) == dataset_files(reference) and not leftover.exists()

    # a changed byte (same size) is found by verify, which reads every file
    size = damaged.stat().st_size
    damaged.write_bytes(bytes(size))
    kept = augment(mugshots, out, settings(model_dir), registry=registry, progress=False)
    assert kept.made == 0
    fixed = augment(
        mugshots, out, settings(model_dir), registry=registry, progress=False, verify=True
    )
    assert (fixed.made, fixed.already_done) == (1, 1)
    assert dataset_files(out) == dataset_files(reference)

    # a finished job is merged again without making anything
    done = augment(mugshots, out, settings(model_dir), registry=registry, progress=False)
    assert (done.made, done.already_done) == (0, 2)


def test_a_different_job_in_the_output_folder_is_refused(full_run, mugshots, model_dir, registry):
    out, _ = full_run
    with pytest.raises(InputError, match=r"different augmentation job \(steps 2 there, 3 now"):
        augment(mugshots, out, settings(model_dir, steps=3), registry=registry, progress=False)
    with pytest.raises(InputError, match="shard_size 2 there, 1 now"):
        augment(mugshots, out, settings(model_dir, shard_size=1), registry=registry, progress=False)
    # the device is not part of the job
    folder = OutputFolder(out)
    job = plan_job(
        read_mugshots(mugshots)[0], settings(model_dir, device="auto"), registry=registry,
        source={"kind": "folders", "path": str(mugshots.resolve())},
    )  # fmt: skip
    assert folder.open(job) is True


# -- inputs ------------------------------------------------------------------------------------


def test_csv_and_gallery_inputs_give_the_same_identities(
    full_run, root, mugshots, model_dir, registry
):
    from facefit.gallery import GalleryIndex, build
    from facefit.imaging.faces import FaceEmbedder

    rows = [("person0/0.png", "alice"), ("person0/1.png", "alice"), ("person3/0.png", "bob")]
    csv_path = root / "ids.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("image", "identity"), *rows])
    listed, kind = read_mugshots(mugshots, identities=csv_path)
    assert kind == "csv" and [(m.key, m.identity) for m in listed] == rows

    embedder = FaceEmbedder.from_registry(registry, detector="fixed-landmarks", encoder="pattern")
    gallery = GalleryIndex.create(embedder.encoder, retriever="exact", registry=registry)
    build.enrol(gallery, embedder, build.from_csv(mugshots, csv_path), progress=False)
    gallery.save(root / "gallery")
    from_gallery, kind = read_mugshots(root / "gallery", registry=registry)
    assert kind == "gallery"
    assert [(m.path, m.identity) for m in from_gallery] == [(m.path, m.identity) for m in listed]

    report = augment(
        root / "gallery", root / "from-gallery", settings(model_dir), registry=registry,
        progress=False,
    )  # fmt: skip
    assert report.counts["identities"] == 2 and report.counts["kept"] == 6


def test_style_prompts_go_in_as_text_and_change_the_sketch(root, mugshots, model_dir, registry):
    prompts = ("a man with a beard", "a woman with long hair")
    out = root / "prompts"
    report = augment(
        mugshots,
        out,
        settings(model_dir, styles="1", style_prompts=prompts, per_identity=2),
        registry=registry,
        progress=False,
    )
    records = [r for r in annotations(out) if r["identity"] == "person1"]
    assert [(r["style"], r["prompt"]) for r in records] == [(1, prompts[0]), (1, prompts[1])]
    assert report.counts["kept"] == 8
    # the same seed with and without a prompt: the text evidence changes the image
    plain = root / "no-prompt"
    augment(
        mugshots, plain, settings(model_dir, styles="1", per_identity=2), registry=registry,
        progress=False,
    )  # fmt: skip
    first = next(r for r in annotations(plain) if r["id"] == records[0]["id"])
    assert first["seed"] == records[0]["seed"]
    assert (plain / first["sketch"]).read_bytes() != (out / records[0]["sketch"]).read_bytes()


# -- the batched sampler -----------------------------------------------------------------------


def test_sample_batch_equals_the_sampler_for_one_evidence(model_dir, registry):
    import torch

    from facefit.generator import load_generator
    from facefit.generator.conditions import ConditionTensors, domain_condition
    from facefit.types import Condition

    model = load_generator(model_dir)
    backend = registry.create_denoiser_backend("eager", model=model.denoiser)
    sampler = registry.create_sampler("ddim", generator=model)
    vector = torch.randn(1, 48, generator=torch.Generator().manual_seed(0))
    conditions = [Condition("reference", tokens=vector), domain_condition("sketch-style2")]
    expected = sampler.sample(backend, conditions, num_images=3, steps=3, guidance=2.5, seed=40)
    cond = model.conditions_to_tensors(conditions).repeat(3)
    nulled = [c.null() if c.modality == "reference" else c for c in conditions]
    null = model.conditions_to_tensors(nulled).repeat(3)
    got = sample_batch(model, backend, sampler, cond, null, [40, 41, 42], steps=3, guidance=2.5)
    assert np.array_equal(got, expected)
    # items with different evidence in one batch: each as it would be alone
    other = [Condition("reference", tokens=-vector), domain_condition("sketch-style0")]
    mixed = ConditionTensors.cat([cond, model.conditions_to_tensors(other)])
    alone = sampler.sample(backend, other, num_images=1, steps=3, guidance=1.0, seed=7)
    got = sample_batch(model, backend, sampler, mixed, None, [40, 41, 42, 7], steps=3, guidance=1.0)
    # equal up to the denoiser's arithmetic at another batch size (the last bits)
    assert np.abs(got[3].astype(int) - alone[0].astype(int)).max() <= 1
    assert np.abs(got[0].astype(int) - alone[0].astype(int)).mean() > 20


# -- errors ------------------------------------------------------------------------------------


def test_bad_inputs_are_clear_errors(root, mugshots, model_dir, registry):
    with pytest.raises(InputError, match="unknown sketch style '3'"):
        parse_styles("0,3")
    with pytest.raises(InputError, match="per-identity must be at least 1"):
        settings(model_dir, per_identity=0)
    with pytest.raises(InputError, match="not a generator directory"):
        augment(mugshots, root / "e1", settings(root / "nothing"), registry=registry)
    with pytest.raises(InputError, match="not an augmentation output"):
        augment(mugshots, mugshots, settings(model_dir), registry=registry)
    with pytest.raises(InputError, match="trained with 'pattern' identity embeddings"):
        augment(mugshots, root / "e2", settings(model_dir, clip=str(model_dir)), registry=registry)
    flat = root / "flat"
    (flat / "nobody").mkdir(parents=True)
    Image.fromarray(np.full((48, 48, 3), 128, np.uint8)).save(flat / "nobody" / "0.png")
    with pytest.raises(InputError, match="no face found in any of the 1 mugshots"):
        augment(
            flat, root / "e3", settings(model_dir, detector="blob"), registry=registry,
            progress=False,
        )  # fmt: skip
    assert json.loads((root / "e3" / "manifest.json").read_text())["skipped"] == [
        {"key": "nobody/0.png", "identity": "nobody", "reason": "no face found"}
    ]


# -- the command line --------------------------------------------------------------------------


def run(registry, *args):
    result = CliRunner().invoke(main, [str(a) for a in args], obj={"registry": registry})
    assert "Traceback" not in result.output, result.output
    return result


def test_cli_makes_the_folder_and_reports_drops(full_run, root, mugshots, model_dir, registry):
    reference, _ = full_run
    cosines = sorted(r["identity_cosine"] for r in annotations(reference))
    threshold = (cosines[2] + cosines[3]) / 2
    out = root / "cli"
    common = [
        "augment", mugshots, "--model", model_dir, "--per-identity", 3, "--styles", "0,any",
        "--steps", 2, "--batch-size", 4, "--shard-size", 2, "--device", "cpu",
        "--detector", "fixed-landmarks", "--encoder", "pattern", "--no-progress",
    ]  # fmt: skip
    result = run(registry, *common, "--out", out, "--min-identity-cosine", threshold)
    assert result.exit_code == 0, result.output
    assert "kept 9 of 12 sketches made for 4 identities; dropped 3 below identity cosine" in (
        result.output
    )
    assert "dropped per identity: " in result.output
    assert len(annotations(out)) == 9

    again = run(registry, *common, "--out", out, "--min-identity-cosine", threshold)
    assert again.exit_code == 0 and "(0 shards made now, 2 already done)" in again.output

    for args, message in [
        (["--styles", "sepia"], "error: unknown sketch style 'sepia'"),
        (["--steps", 5], "error: " + str(out) + ": holds a different augmentation job"),
        (["--model", root / "missing"], "not a generator directory"),
    ]:
        bad = run(registry, *common, "--out", out, "--min-identity-cosine", threshold, *args)
        assert bad.exit_code == 2 and message in bad.output
        assert len(bad.output.strip().splitlines()) == 1


def test_cli_without_the_default_model_says_how_to_get_one(root, mugshots, registry, monkeypatch):
    from facefit.generator import loading

    monkeypatch.setattr(loading, "DEFAULT_MODEL_DIR", root / "no-default-model")
    result = run(registry, "augment", mugshots, "--out", root / "e4", "--no-progress")
    assert result.exit_code == 2
    assert "the default generator is not installed" in result.output


# -- the real detector and encoder -------------------------------------------------------------


@pytest.fixture(scope="module")
def real_registry():
    from facefit import Registry, weights
    from facefit.errors import WeightsNotFoundError

    try:
        weights.resolve("yunet"), weights.resolve("sface")
    except WeightsNotFoundError as exc:
        pytest.skip(f"model files not installed ({exc})")
    return Registry.load(allow=["yunet", "sface", "conditioners", "samplers", "eager"])


def test_real_faces_with_yunet_and_sface(root, real_registry):
    """Bundled demo faces: the SFace cosine recorded is the one of the saved sketch."""
    from facefit.imaging.faces import FaceEmbedder
    from facefit.imaging.images import load_image

    folder = root / "demo"
    for path in sorted((DEMO / "gallery").iterdir())[:2]:
        (folder / path.stem).mkdir(parents=True)
        shutil.copy(path, folder / path.stem / path.name)
    model = root / "sface-model"
    tiny_generator(5, identity_dim=128, face_encoder="sface").save_pretrained(model)
    report = augment(
        folder,
        root / "demo-out",
        AugmentSettings(model=str(model), per_identity=2, steps=2, min_identity_cosine=-1.0),
        registry=real_registry,
        progress=False,
    )
    assert report.counts["kept"] == 4 and report.counts["mugshots_skipped"] == 0
    embedder = FaceEmbedder.from_registry(real_registry)
    for record in annotations(root / "demo-out"):
        mugshot = load_image(folder / record["source"])
        reference = embedder.embed_aligned(embedder.align(mugshot)[None])[0]
        sketch = load_image(root / "demo-out" / record["sketch"])
        vector = embedder.embed_aligned(sketch_for_encoder(sketch[None], 112))[0]
        assert float(vector @ reference) == pytest.approx(record["identity_cosine"], abs=1e-4)
