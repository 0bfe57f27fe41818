"""Running a job on a Ray cluster: one idempotent task per shard, merged by the driver.

    >>> from facefit.augment import AugmentSettings, augment_ray
    >>> augment_ray("/shared/mugshots", "/shared/out/sketches", AugmentSettings(),
    ...             address="auto", num_gpus=1)

The driver (the process that calls :func:`augment_ray`) reads the inputs, plans the
job and opens the output folder exactly as a local run does; each unfinished shard
becomes a Ray task that writes its images and commits its unit file in the same
format, so local runs and Ray runs of one job can follow each other in any order
and each skips what the other finished. A task whose shard is already committed
returns at once; a task that dies is retried (``max_retries``) and, being
deterministic, writes the same bytes. The driver then merges ``annotations.json``
and ``manifest.json``.

The mugshots, the generator directory and the output folder are passed as paths:
every worker must see them at the same paths (a shared filesystem). Each worker
process loads the models once and keeps them for the shards it is given.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from facefit.augment.plan import AugmentSettings, Job, Shard, planned_sketches
from facefit.augment.run import AugmentReport, Mugshots, check_any_kept, prepare_job, progress_bar
from facefit.augment.store import OutputFolder
from facefit.errors import FacefitError, InputError

__all__ = ["augment_ray", "make_shard"]

_RUNNERS: dict[str, Any] = {}
"""Per worker process: the loaded :class:`ShardRunner` of each job fingerprint."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            "Ray is not installed; install it with: pip install 'facefit[ray]' "
            "(or run without --ray)"
        ) from None
    return ray


def make_shard(job: Job, shard: Shard, out: str, threads: int = 0) -> dict[str, Any]:
    """Make ``shard`` of ``job`` into ``out`` unless it is committed; a Ray task body.

    ``job`` may be :meth:`Job.for_worker` (what the tasks are sent). Returns a small
    summary: shard, whether it was made here, kept/dropped counts, device and host.
    """
    from facefit.augment.worker import ShardRunner

    folder = OutputFolder(out)
    unit = folder.read_unit(shard, job.fingerprint)
    made = unit is None
    if made:
        runner = _RUNNERS.get(job.fingerprint)
        if runner is None:
            _RUNNERS.clear()
            runner = _RUNNERS[job.fingerprint] = ShardRunner(job, threads=threads)
        unit = runner.run(shard, folder)
    return {
        "shard": shard.index,
        "made": made,
        "mugshots": len(shard.mugshots),
        "kept": len(unit["records"]),
        "dropped": len(unit["dropped"]),
        "sketches": planned_sketches(job.settings, shard.mugshots),
        "device": unit.get("device"),
        "host": unit.get("host"),
    }


def _task_error(exc: BaseException) -> BaseException:
    """The user-facing error inside a Ray task failure, when there is one."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, FacefitError) else exc


def augment_ray(
    mugshots: Mugshots,
    out: str | os.PathLike[str],
    settings: AugmentSettings | None = None,
    *,
    address: str | None = None,
    identities: str | os.PathLike[str] | None = None,
    image_column: str | None = None,
    identity_column: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    max_retries: int = 2,
    init_options: dict[str, Any] | None = None,
    progress: bool = True,
    registry: Any = None,
    verify: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
) -> AugmentReport:
    """Run an augmentation job as Ray tasks, one per unfinished shard; then merge.

    ``address`` is a Ray cluster address (``"auto"``, ``"HOST:6379"``,
    ``"ray://HOST:10001"``, ``"local"`` for a new instance on this machine); None
    connects to ``RAY_ADDRESS``, else to the last cluster started on this machine,
    else starts a local instance (Ray's own rule). A Ray connection made here is closed at the end; one the
    caller made (``ray.is_initialized()``) is used and left open. Each task asks
    Ray for ``num_cpus`` CPUs (also its torch threads) and ``num_gpus`` GPUs;
    with ``num_gpus`` > 0 and ``device="auto"`` the workers use their GPU.
    ``registry`` serves the driver's planning only: workers load the installed
    plugins. ``verify`` and ``data_dir`` as for :func:`~facefit.augment.run.augment`.
    With GPUs asked for, backend ``auto`` means eager (the driver cannot tell whether
    the workers' ONNX Runtime has CUDA).
    """
    ray = _ray()
    settings = settings or AugmentSettings()
    if num_gpus > 0 and settings.backend == "auto":
        settings = replace(settings, backend="eager")
    start = time.perf_counter()
    job, folder, _ = prepare_job(
        mugshots,
        out,
        settings,
        identities=identities,
        image_column=image_column,
        identity_column=identity_column,
        registry=registry,
        data_dir=data_dir,
    )
    pending = folder.pending(job, verify=verify)
    out_path = str(Path(out).resolve())
    devices: list[str] = []
    if pending:
        started_here = not ray.is_initialized()
        if started_here:
            options = {"include_dashboard": False, "log_to_driver": False, **(init_options or {})}
            try:
                ray.init(address=address, **options)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = address or "RAY_ADDRESS / the last cluster started here"
                why = str(exc).split(". ")[0]
                raise InputError(
                    f"cannot connect to Ray at {where} ({why}); start a cluster with "
                    "`ray start --head`, or use --ray local"
                ) from None
        try:
            devices = _run_tasks(
                ray, job, pending, out_path, num_cpus, num_gpus, max_retries, progress
            )
        finally:
            if started_here:
                ray.shutdown()
    manifest = folder.merge(job, seconds=time.perf_counter() - start, devices=devices)
    check_any_kept(job, manifest)
    return AugmentReport(Path(out), job, len(pending), len(job.shards) - len(pending), manifest)


def _run_tasks(
    ray: Any,
    job: Job,
    pending: list,
    out: str,
    num_cpus: float,
    num_gpus: float,
    max_retries: int,
    progress: bool,
) -> list[str]:
    task = ray.remote(make_shard).options(
        num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries
    )
    job_ref = ray.put(job.for_worker())
    threads = max(1, int(num_cpus))
    waiting = {task.remote(job_ref, shard, out, threads): shard for shard in pending}
    bar = progress_bar(job, pending, "augmenting (ray)") if progress else None
    devices: set[str] = set()
    kept = dropped = 0
    try:
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1)
            for ref in ready:
                shard = waiting.pop(ref)
                try:
                    summary = ray.get(ref)
                except Exception as exc:
                    error = _task_error(exc)
                    if isinstance(error, FacefitError):
                        raise type(error)(f"{shard.name}: {error}") from None
                    raise
                devices.add(str(summary["device"]))
                kept += summary["kept"]
                dropped += summary["dropped"]
                if bar is not None:
                    bar.set_postfix(kept=kept, dropped=dropped)
                    bar.update(summary["sketches"])
    finally:
        if bar is not None:
            bar.close()
        for ref in waiting:
            ray.cancel(ref)
    return sorted(devices)
