"""``facefit augment`` on Ray: one idempotent task per shard, mixed freely with local runs.

Ray workers load the installed plugins, so these tests use the real YuNet + SFace
(skipped when their files are not installed) and a tiny random generator. The Ray
test starts a local Ray instance with one CPU and is skipped when Ray is not
installed (it is the optional extra ``facefit[ray]``, not part of ``dev``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facefit.augment import AugmentSettings, augment
from facefit.augment.distributed import make_shard
from facefit.augment.run import prepare_job
from tests.generator_helpers import single_thread, tiny_generator  # noqa: F401 (fixture)

DEMO = Path(__file__).resolve().parents[1] / "sdk" / "facefit" / "demo_data"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from facefit import weights
    from facefit.errors import WeightsNotFoundError

    try:
        weights.resolve("yunet"), weights.resolve("sface")
    except WeightsNotFoundError as exc:
        pytest.skip(f"model files not installed ({exc})")
    root = tmp_path_factory.mktemp("augment-ray")
    mugshots = root / "mugs"
    for path in sorted((DEMO / "gallery").iterdir())[:3]:
        (mugshots / path.stem).mkdir(parents=True)
        shutil.copy(path, mugshots / path.stem / path.name)
    model = root / "model"
    tiny_generator(2, identity_dim=128, face_encoder="sface").save_pretrained(model)
    settings = AugmentSettings(
        model=str(model), per_identity=2, steps=2, shard_size=1, min_identity_cosine=-1.0
    )
    reference = root / "local"
    augment(mugshots, reference, settings, progress=False)
    return root, mugshots, settings, reference


def dataset_files(out: Path) -> dict[str, bytes]:
    files = {"annotations.json": (out / "annotations.json").read_bytes()}
    for folder in ("photo", "sketch"):
        files.update({f"{folder}/{p.name}": p.read_bytes() for p in (out / folder).iterdir()})
    return files


def test_a_shard_task_is_idempotent(setup):
    root, mugshots, settings, reference = setup
    out = root / "tasks"
    job, folder, resumed = prepare_job(mugshots, out, settings)
    assert not resumed and len(job.shards) == 3
    first = make_shard(job.for_worker(), job.shards[1], str(out))
    assert first["made"] and first["kept"] == 2 and first["device"] == "cpu"
    unit = folder.unit_path(job.shards[1]).read_bytes()
    again = make_shard(
        job.for_worker(), job.shards[1], str(out)
    )  # a retried task: nothing made, nothing changed
    assert not again["made"] and again["kept"] == 2
    assert folder.unit_path(job.shards[1]).read_bytes() == unit
    # the rest locally: the local run skips the shard the task made
    report = augment(mugshots, out, settings, progress=False)
    assert (report.made, report.already_done) == (2, 1)
    assert dataset_files(out) == dataset_files(reference)


@pytest.mark.slow
def test_ray_resumes_a_local_run_and_gives_the_same_files(setup):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'facefit[ray]')")
    from facefit.augment import augment_ray

    root, mugshots, settings, reference = setup
    out = root / "mixed"
    partial = augment(mugshots, out, settings, progress=False, max_shards=1)
    assert partial.made == 1 and partial.manifest["status"] == "running"

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        report = augment_ray(mugshots, out, settings, progress=False)
    finally:
        ray.shutdown()
    assert (report.made, report.already_done) == (2, 1)
    assert dataset_files(out) == dataset_files(reference)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "complete" and manifest["counts"]["kept"] == 6
    # and a local rerun finds nothing to do
    assert augment(mugshots, out, settings, progress=False).made == 0
