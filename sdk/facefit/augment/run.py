"""Running a job on this machine: plan, skip finished shards, make the rest, merge."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facefit.augment.inputs import (
    HeldOut,
    Mugshot,
    TrainingPhotos,
    read_mugshots,
    refuse_held_out,
)
from facefit.augment.plan import AugmentSettings, Job, plan_job, planned_sketches
from facefit.augment.store import OutputFolder
from facefit.errors import InputError

__all__ = ["AugmentReport", "Mugshots", "augment", "prepare_job"]

Mugshots = str | os.PathLike[str] | Sequence[Mugshot] | TrainingPhotos
"""What a job draws from: a folder or gallery, a list of mugshots, or a data folder's
training photos."""


@dataclass
class AugmentReport:
    """What a run did: shards made and skipped, and the merged manifest."""

    out: Path
    job: Job
    made: int
    already_done: int
    manifest: dict[str, Any] = field(repr=False)

    @property
    def counts(self) -> dict[str, Any]:
        return self.manifest["counts"]

    @property
    def dropped_by_identity(self) -> dict[str, int]:
        """Identities with at least one sketch dropped by the quality filter."""
        return {i: e["dropped"] for i, e in self.manifest["per_identity"].items() if e["dropped"]}


def prepare_job(
    mugshots: Mugshots,
    out: str | os.PathLike[str],
    settings: AugmentSettings,
    *,
    identities: str | os.PathLike[str] | None = None,
    image_column: str | None = None,
    identity_column: str | None = None,
    registry: Any = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[Job, OutputFolder, bool]:
    """Read the inputs, plan the job and open ``out`` for it (started or resumed).

    With ``data_dir`` (always, for :class:`TrainingPhotos`) a mugshot of the data
    folder's development split or calibration slice is refused. Returns the job, the
    output folder and whether the job had been started there before.
    """
    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    if isinstance(mugshots, TrainingPhotos):
        listed, source = mugshots.mugshots(), mugshots.describe()
        data_dir = mugshots.data_dir if data_dir is None else data_dir
    elif isinstance(mugshots, (str, os.PathLike)):
        listed, kind = read_mugshots(
            mugshots,
            identities=identities,
            image_column=image_column,
            identity_column=identity_column,
            registry=registry,
        )
        source = {"kind": kind, "path": str(Path(mugshots).resolve())}
        if identities is not None:
            source["identities"] = str(Path(identities).resolve())
    else:
        listed, source = list(mugshots), {"kind": "list"}
    if not listed:
        raise InputError("no mugshots given")
    if data_dir is not None:
        refuse_held_out(listed, HeldOut.of(data_dir))
        source["checked_against"] = str(Path(data_dir).resolve())
    job = plan_job(listed, settings, registry=registry, source=source)
    folder = OutputFolder(out)
    resumed = folder.open(job)
    return job, folder, resumed


def augment(
    mugshots: Mugshots,
    out: str | os.PathLike[str],
    settings: AugmentSettings | None = None,
    *,
    identities: str | os.PathLike[str] | None = None,
    image_column: str | None = None,
    identity_column: str | None = None,
    registry: Any = None,
    progress: bool = True,
    max_shards: int | None = None,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
    verify: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    threads: int = 0,
) -> AugmentReport:
    """Mugshots → an FS2K-format folder of synthetic sketches at ``out`` (resumable).

    ``mugshots`` is a folder (``DIR/<identity>/<image>``, or with ``identities`` a
    CSV of image and identity), a gallery directory, a list of
    :class:`~facefit.augment.inputs.Mugshot`, or
    :class:`~facefit.augment.inputs.TrainingPhotos` (the photos the sketch matcher
    trains on). With ``data_dir``, mugshots held out by that data folder's split are
    refused. ``threads`` (> 0) sets the torch and ONNX Runtime threads. Shards already committed in ``out``
    are skipped. ``max_shards`` stops after making that many (the job stays
    unfinished, to be resumed; the report's manifest is then the running one).
    ``on_shard`` is called with each unit as it is committed. A committed shard
    is made again when one of its files is missing or has the wrong size; with
    ``verify``, also when its sha256 differs (every file is read).
    """
    settings = settings or AugmentSettings()
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
    done_before = len(job.shards) - len(pending)
    todo = pending if max_shards is None else pending[: max(0, max_shards)]
    made = 0
    devices: list[str] = []
    if todo:
        from facefit.augment.worker import ShardRunner

        runner = ShardRunner(job, registry=registry, threads=threads)
        devices.append(runner.device)
        bar = progress_bar(job, pending, "augmenting") if progress else None
        kept = dropped = 0
        try:
            for shard in todo:
                drawn = 0

                def advance(n: int) -> None:
                    nonlocal drawn
                    drawn += n
                    if bar is not None:
                        bar.update(n)

                unit = runner.run(shard, folder, on_sketches=advance)
                made += 1
                kept += len(unit["records"])
                dropped += len(unit["dropped"])
                if bar is not None:  # mugshots without a face asked for sketches not drawn
                    bar.update(planned_sketches(job.settings, shard.mugshots) - drawn)
                    bar.set_postfix(kept=kept, dropped=dropped)
                if on_shard is not None:
                    on_shard(unit)
        finally:
            if bar is not None:
                bar.close()
    if len(todo) < len(pending):
        return AugmentReport(Path(out), job, made, done_before, folder.manifest())
    manifest = folder.merge(job, seconds=time.perf_counter() - start, devices=devices)
    check_any_kept(job, manifest)
    return AugmentReport(Path(out), job, made, done_before, manifest)


def progress_bar(job: Job, pending: Sequence[Any], desc: str) -> Any:
    """A tqdm bar counting the job's sketches, the finished shards' already filled in."""
    from tqdm import tqdm

    total = planned_sketches(job.settings, job.mugshots)
    bar = tqdm(total=total, desc=desc, unit="sketch", smoothing=0.05)
    bar.update(total - sum(planned_sketches(job.settings, s.mugshots) for s in pending))
    return bar


def check_any_kept(job: Job, manifest: dict[str, Any]) -> None:
    """Raise a clear error when the whole job made nothing usable."""
    counts = manifest["counts"]
    if counts["generated"] == 0:
        raise InputError(
            f"no face found in any of the {counts['mugshots']} mugshots "
            f"(detector {job.settings.detector!r}); give photos with a visible face"
        )
