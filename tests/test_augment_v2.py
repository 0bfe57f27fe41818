"""``facefit augment`` with a generator that takes the mugshot as a reference image (v2).

A tiny v2 model (adaptive-norm conditioning, reference image, v-prediction) saved to
disk, and the weight-free ``fixed-landmarks`` detector and ``pattern`` encoder, make
every run take a second or two. What is checked: the mugshot's aligned crop reaches
the generator and changes its sketches; every mugshot is drawn in the 3 FS2K styles
(``per_mugshot``) into a folder the matcher's reader takes; an interrupted job resumes
without redoing finished shards; development and calibration photos are refused; the
ONNX Runtime backend gives the same bytes on a rerun.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facefit.augment import AugmentSettings, augment
from facefit.augment.inputs import HeldOut, Mugshot, TrainingPhotos, refuse_held_out
from facefit.augment.plan import identity_samples, plan_job, planned_sketches
from facefit.augment.worker import ShardRunner, sample_batch
from facefit.cli import main
from facefit.errors import InputError
from tests.generator_helpers import single_thread, tiny_generator  # noqa: F401 (fixture)
from tests.plugins.gallery_toys import save_mugshots

V2 = {"conditioning": "adanorm", "reference_image": True, "prediction_type": "v_prediction"}
TOYS = {"detector": "fixed-landmarks", "filter_encoder": "pattern"}


def _registry(*extra: str):
    from facefit import Registry
    from tests.plugins import generator_toys
    from tests.plugins.gallery_toys import Toys

    return Registry.load(
        allow=["conditioners", "samplers", "eager", *extra],
        plugins=[("generator-toys", generator_toys), ("gallery-toys", Toys())],
    )


@pytest.fixture(scope="module")
def registry():
    return _registry()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("augment-v2")


def _v2_model(path: Path, seed: int = 3) -> Path:
    """A tiny v2 generator whose reference image visibly steers it.

    Fresh, the image path is almost silent (the first convolution sees 13 input
    channels at random scale), so the reference channels' input weights are scaled up:
    a trained model listens to its reference; this one is made to, so that a test of
    the plumbing can see whether the image arrived.
    """
    import torch

    model = tiny_generator(seed, identity_dim=48, face_encoder="pattern", **V2)
    conv = model.denoiser.unet.conv_in
    with torch.no_grad():
        conv.weight[:, -4:-1] *= 20.0  # the reference image's 3 channels (then its presence)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def v2_dir(root):
    return _v2_model(root / "v2")


@pytest.fixture(scope="module")
def v1_dir(root):
    path = root / "v1"
    tiny_generator(3, identity_dim=48, face_encoder="pattern").save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def mugshots(root):
    """MUGS/<person>/<n>.png: four identities, the first with two mugshots."""
    return save_mugshots(root / "mugs")


def settings(model_dir, **changes):
    values = {
        "model": str(model_dir),
        "per_mugshot": 1,
        "styles": "0,1,2",
        "steps": 2,
        "min_identity_cosine": -1.0,
        "batch_size": 4,
        "shard_size": 2,
        "device": "cpu",
        "backend": "eager",
        **TOYS,
        **changes,
    }
    return AugmentSettings(**values)


def annotations(out: Path) -> list[dict]:
    return json.loads((out / "annotations.json").read_text(encoding="utf-8"))


def dataset_files(out: Path) -> dict[str, bytes]:
    files = {"annotations.json": (out / "annotations.json").read_bytes()}
    for folder in ("photo", "sketch"):
        files.update({f"{folder}/{p.name}": p.read_bytes() for p in (out / folder).iterdir()})
    return files


@pytest.fixture(scope="module")
def full_run(root, mugshots, v2_dir, registry):
    out = root / "full"
    report = augment(mugshots, out, settings(v2_dir), registry=registry, progress=False)
    return out, report


# -- the reference image -----------------------------------------------------------------------


def _runner(model_dir, mugshots, registry, **changes):
    from facefit.augment import read_mugshots

    job = plan_job(read_mugshots(mugshots)[0], settings(model_dir, **changes), registry=registry)
    return job, ShardRunner(job, registry=registry)


def _sketch(runner, face, seed=11):
    """One sketch, alone in its batch (a DDPM batch draws its step noise as a whole)."""
    from facefit.augment.plan import Variant

    cond, null = runner._tensors([(face, Variant("sketch-style1"))])
    s = runner.job.settings
    return sample_batch(
        runner.model, runner.backend, runner.sampler, cond, null, [seed],
        steps=s.steps, guidance=s.guidance,
    )[0]  # fmt: skip


def test_the_mugshot_crop_is_the_reference_image_and_changes_the_sketch(mugshots, v2_dir, registry):
    from dataclasses import replace

    from facefit.generator.conditions import images_to_tensor

    job, runner = _runner(v2_dir, mugshots, registry)
    assert job.description["model"]["conditions"] == ["identity", "reference_image", "domain"]
    skipped: list = []
    faces = runner._faces(job.shards[0], skipped)
    cond, null = runner._tensors([(faces[0], job.settings.variants[0])])
    assert cond.reference_image_present.tolist() == [1.0] and cond.reference_present.tolist() == [1]
    expected = images_to_tensor(faces[0].photo[None])
    assert np.allclose(cond.reference_image.numpy(), expected.numpy(), atol=1e-6)
    assert null.reference_image_present.tolist() == [0.0]  # guidance is against no reference

    # the same identity vector, another face image: only the reference image differs
    other = replace(faces[0], photo=np.ascontiguousarray(faces[0].photo[:, ::-1]))
    a, b = _sketch(runner, faces[0]), _sketch(runner, other)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 2.0

    # with the reference image switched off the two are the same sketch
    job_off, off = _runner(v2_dir, mugshots, registry, reference_image=False)
    assert job_off.description["model"]["conditions"] == ["identity", "domain"]
    assert np.array_equal(_sketch(off, faces[0]), _sketch(off, other))


def test_a_v1_generator_gets_the_identity_only(mugshots, v1_dir, registry, root):
    out = root / "v1-out"
    report = augment(mugshots, out, settings(v1_dir), registry=registry, progress=False)
    assert report.job.description["model"]["reference_image"] is False
    assert report.job.description["model"]["conditions"] == ["identity", "domain"]
    assert report.counts["kept"] == 5 * 3


# -- three styles of every mugshot, in a folder the matcher reads ------------------------------


def test_every_mugshot_is_drawn_in_the_three_styles(full_run, mugshots):
    from facefit.matcher.data import synthetic_pairs

    out, report = full_run
    records = annotations(out)
    by_source: dict[str, list[int]] = {}
    for r in records:
        by_source.setdefault(r["source"], []).append(r["style"])
    keys = sorted(p.relative_to(mugshots).as_posix() for p in mugshots.rglob("*.png"))
    assert sorted(by_source) == keys and all(s == [0, 1, 2] for s in by_source.values())
    assert report.counts["requested"] == report.counts["generated"] == 15
    assert report.manifest["per_style"] == {s: {"kept": 5, "dropped": 0} for s in "012"}
    for r in records:
        assert Image.open(out / r["sketch"]).size == (16, 16)
    pairs, dropped = synthetic_pairs(out)
    assert len(pairs) == 15 and not dropped and all(p.aligned for p in pairs)
    assert {p.identity for p in pairs} == {f"synthetic/person{i}" for i in range(4)}


def test_per_mugshot_samples_do_not_depend_on_the_other_mugshots():
    s = settings("unused", per_mugshot=2, styles="0,2")
    both = identity_samples(s, "alice", ["a.png", "b.png"])
    alone = identity_samples(s, "alice", ["b.png"])
    assert [(x.variant.domain, x.number, x.seed) for x in both if x.mugshot == 1] == [
        (x.variant.domain, x.number, x.seed) for x in alone
    ]
    assert [x.variant.domain for x in alone] == ["sketch-style0", "sketch-style2"] * 2
    mugs = [Mugshot(Path(f"{k}.png"), i, f"{k}.png") for k, i in [(1, "a"), (2, "a"), (3, "b")]]
    assert planned_sketches(s, mugs) == 2 * 2 * 3
    assert planned_sketches(settings("unused", per_mugshot=0, per_identity=5), mugs) == 10


def test_the_reference_image_changes_the_saved_sketches(full_run, root, mugshots, v2_dir, registry):
    out, _ = full_run
    plain = root / "identity-only"
    augment(
        mugshots, plain, settings(v2_dir, reference_image=False), registry=registry,
        progress=False,
    )  # fmt: skip
    with_image = {r["id"]: r for r in annotations(out)}
    changed = 0
    for r in annotations(plain):
        assert with_image[r["id"]]["seed"] == r["seed"]
        changed += (plain / r["sketch"]).read_bytes() != (out / r["sketch"]).read_bytes()
    assert changed == len(with_image)


# -- resuming ----------------------------------------------------------------------------------


def test_an_interrupted_job_resumes_and_skips_finished_shards(
    full_run, root, mugshots, v2_dir, registry
):
    reference, _ = full_run
    out = root / "interrupted"

    def crash(unit):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        augment(mugshots, out, settings(v2_dir), registry=registry, progress=False, on_shard=crash)
    first_unit = (out / "units" / "shard-000000.json").read_bytes()
    made_by_shard: list[int] = []
    report = augment(
        mugshots, out, settings(v2_dir), registry=registry, progress=False,
        on_shard=lambda unit: made_by_shard.append(unit["shard"]),
    )  # fmt: skip
    assert (report.made, report.already_done) == (1, 1) and made_by_shard == [1]
    assert (out / "units" / "shard-000000.json").read_bytes() == first_unit
    assert dataset_files(out) == dataset_files(reference)


def test_the_progress_bar_counts_sketches(root, mugshots, v2_dir, registry, capsys):
    augment(mugshots, root / "bar", settings(v2_dir), registry=registry, progress=True)
    err = capsys.readouterr().err
    assert "15/15" in err and "sketch" in err


# -- held-out photos ---------------------------------------------------------------------------


def _mugshot(name: str, identity: str = "someone") -> Mugshot:
    return Mugshot(Path("/data") / name, identity, name)


def test_development_and_calibration_photos_are_refused():
    held = HeldOut(
        fs2k_dev=frozenset({"photo1_0001"}),
        fs2k_calibration=frozenset({"photo2_0002"}),
        celeba_images=frozenset({"000093.jpg"}),
        celeba_identities=frozenset({"7399"}),
    )
    assert held.reason(_mugshot("photo1_0001.jpg")) == "FS2K development pair photo1_0001"
    assert held.reason(_mugshot("photo2_0002.png")) == "FS2K calibration pair photo2_0002"
    assert held.reason(_mugshot("000093.jpg")) == "CelebA development image 000093.jpg"
    assert held.reason(_mugshot("x.jpg", "celeba/7399")) == "CelebA development identity 7399"
    assert held.reason(_mugshot("x.jpg", "7399")) is None  # a folder name is not CelebA's id
    assert held.reason(_mugshot("photo1_0003.jpg")) is None
    fine = [_mugshot("photo1_0003.jpg"), _mugshot("000094.jpg", "celeba/1")]
    refuse_held_out(fine, held)
    with pytest.raises(InputError, match=r"2 of the 4 mugshots are held out .*calibration pair"):
        refuse_held_out([*fine, _mugshot("photo2_0002.png"), _mugshot("000093.jpg")], held)


def test_the_training_photos_are_the_splits_and_held_out_ones_are_refused(
    shared_data, root, v2_dir, registry
):
    from facefit.datasets import splits

    photos = TrainingPhotos(shared_data, ("fs2k-train", "celeba-train")).mugshots()
    fs2k = sorted(m.path.stem for m in photos if m.identity.startswith("fs2k/"))
    celeba = sorted(m.path.name for m in photos if m.identity.startswith("celeba/"))
    assert fs2k == sorted(splits.fs2k_training(shared_data))
    assert celeba == sorted(splits.celeba_split(shared_data).train)
    refuse_held_out(photos, HeldOut.of(shared_data))
    assert not set(fs2k) & set(splits.fs2k_calibration(shared_data))

    records = {r["id"]: r for r in splits.load_fs2k_annotations(shared_data)}
    dev_id = splits.fs2k_split(shared_data).dev[0]
    calibration_id = splits.fs2k_calibration(shared_data)[0]
    for pair_id, what in [(dev_id, "development"), (calibration_id, "calibration")]:
        path = shared_data / splits.FS2K_DIR / records[pair_id]["photo"]
        bad = [*photos[:2], Mugshot(path, "someone", path.name)]
        with pytest.raises(InputError, match=f"FS2K {what} pair {pair_id}"):
            augment(
                bad, root / "never", settings(v2_dir), registry=registry,
                data_dir=shared_data, progress=False,
            )  # fmt: skip
    assert not (root / "never").exists()


def test_a_fifo_among_the_mugshots_is_skipped_not_read(root, mugshots, v2_dir, registry):
    from facefit.augment import read_mugshots

    fifo = root / "pipe.png"
    os.mkfifo(fifo)
    listed = [*read_mugshots(mugshots)[0], Mugshot(fifo, "person9", "pipe.png")]
    job = plan_job(listed, settings(v2_dir), registry=registry)
    assert job.skipped == (
        {"key": "pipe.png", "identity": "person9", "reason": "not a mugshot but a FIFO "
         "(named pipe); give a regular mugshot"},
    )  # fmt: skip


# -- the command line --------------------------------------------------------------------------


def run(registry, *args):
    result = CliRunner().invoke(main, [str(a) for a in args], obj={"registry": registry})
    assert "Traceback" not in result.output, result.output
    return result


def test_cli_draws_each_mugshot_in_three_styles(root, mugshots, v2_dir, registry):
    out = root / "cli"
    args = [
        "augment", mugshots, "--out", out, "--model", v2_dir, "--per-mugshot", 1,
        "--styles", "0,1,2", "--steps", 2, "--batch-size", 4, "--shard-size", 2,
        "--device", "cpu", "--detector", "fixed-landmarks", "--encoder", "pattern",
        "--min-identity-cosine", -1, "--backend", "eager", "--no-progress",
    ]  # fmt: skip
    result = run(registry, *args)
    assert result.exit_code == 0, result.output
    assert "kept 15 of 15 sketches" in result.output
    assert "by style: style 0: kept 5, dropped 0, style 1: kept 5" in result.output
    assert "conditions: identity, reference_image, domain; backend eager" in result.output
    off = run(registry, *args[:3], root / "cli-off", *args[4:], "--no-reference-image")
    assert "conditions: identity, domain" in off.output

    for extra, message in [
        (["--source", "celeba-train"], "give MUGSHOTS or --source, not both"),
        (["--per-mugshot", -1], "--per-mugshot must be 0 (off) or more"),
    ]:
        bad = run(registry, *args, *extra)
        assert bad.exit_code == 2 and message in bad.output, bad.output
    alone = run(registry, "augment", "--source", "fs2k-train", "--out", root / "x")
    assert alone.exit_code == 2 and "add --data DIR" in alone.output


# -- ONNX Runtime ------------------------------------------------------------------------------


@pytest.fixture
def onnx_registry(tmp_path, monkeypatch):
    from facefit_runtime import onnxruntime_backend
    from facefit_runtime.cache import ENV_ENGINE_CACHE

    ok, why = onnxruntime_backend.available()
    if not ok:
        pytest.skip(why)
    monkeypatch.setenv(ENV_ENGINE_CACHE, str(tmp_path / "engines"))
    return _registry("onnxruntime")


def test_auto_picks_onnxruntime_and_a_rerun_gives_the_same_bytes(
    full_run, root, mugshots, v2_dir, onnx_registry
):
    reference, _ = full_run
    first, second = root / "ort-1", root / "ort-2"
    report = augment(
        mugshots, first, settings(v2_dir, backend="auto"), registry=onnx_registry,
        progress=False, threads=1,
    )  # fmt: skip
    assert report.job.settings.backend == "onnxruntime"
    assert report.job.description["settings"]["backend"] == "onnxruntime"
    augment(
        mugshots, second, settings(v2_dir, backend="onnxruntime"), registry=onnx_registry,
        progress=False, threads=1,
    )  # fmt: skip
    assert dataset_files(first) == dataset_files(second)
    # the same sketches as eager, up to the backends' rounding
    for r in annotations(reference):
        eager = np.asarray(Image.open(reference / r["sketch"]), int)
        ort = np.asarray(Image.open(first / r["sketch"]), int)
        assert np.abs(eager - ort).max() <= 2
    # without the onnxruntime plugin, auto is eager
    assert plan_job(
        [Mugshot(next(mugshots.rglob("*.png")), "a", "a.png")], settings(v2_dir, backend="auto"),
        registry=_registry(),
    ).settings.backend == "eager"  # fmt: skip
