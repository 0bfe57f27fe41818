"""An application embedding facefit: a gallery, a search, a run with progress, a cancelled run.

    python examples/app_developer.py [--work DIR] [--rounds 2 --candidates 2 --steps 4]

What a case system does with facefit, on the bundled demo data (FS2K sketches and
24 mugshots) and the shipped default generator, with tiny settings so it runs in
seconds on a CPU:

1. open the gallery, or build it on first use (``GalleryIndex.open_or_build``);
2. search it with a face photo;
3. run the pipeline on a sketch and a description, showing progress;
4. start a second run in a worker thread and cancel it mid-round, as a web app's
   cancel button would, keeping the rounds it completed.

It prints what it did and exits 0; CI runs it (tests/test_examples.py).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
from pathlib import Path

from facefit import Evidence, Registry
from facefit.gallery import GalleryIndex
from facefit.imaging.faces import FaceEmbedder
from facefit.pipeline import Cancelled, CancelToken, Pipeline, PipelineConfig, Progress
from facefit.pipeline.demo import DEMO_DATA


def open_gallery(work: Path, embedder: FaceEmbedder) -> GalleryIndex:
    """The case system's mugshot gallery: built from the demo folder the first time."""
    return GalleryIndex.open_or_build(
        work / "mugshots.gallery",
        DEMO_DATA / "gallery",
        identities=DEMO_DATA / "gallery.csv",
        embedder=embedder,
    )


def search(gallery: GalleryIndex, embedder: FaceEmbedder, photo: Path) -> None:
    """Who in the gallery looks like this photo."""
    hits = gallery.search(embedder.embed_images([photo_array(photo)])[0], k=3)
    print(f"search {photo.name}: " + ", ".join(f"{h.identity} {h.score:.3f}" for h in hits))


def photo_array(path: Path):
    from facefit.imaging.images import load_image

    return load_image(path)


def run_with_progress(pipeline: Pipeline, evidence: Evidence) -> None:
    """A run whose progress goes to the console (a web app would store it for polling)."""

    def show(p: Progress) -> None:
        if p.stage in ("prepare", "done") or p.candidate == p.candidates or p.step == p.steps:
            print(f"  {p.stage:7} round {p.round + 1}/{p.rounds} {p.fraction:4.0%}")

    result = pipeline.run(evidence, progress=show)
    print(f"run: {result.provenance['stopped']}; top 3:")
    for match in result.top(3):
        print(f"  {match.rank}. {match.identity} {match.score:.3f}")


def run_and_cancel(pipeline: Pipeline, evidence: Evidence) -> None:
    """A run in a worker thread, cancelled from this thread once round 2 is sampling."""
    token = CancelToken()
    in_round_2 = threading.Event()
    outcome: dict[str, object] = {}

    def progress(p: Progress) -> None:
        if p.stage == "sample" and p.round == 1 and p.step >= 1:
            in_round_2.set()

    def worker() -> None:
        try:
            outcome["result"] = pipeline.run(evidence, progress=progress, cancel=token)
        except Cancelled as stop:
            outcome["cancelled"] = stop

    thread = threading.Thread(target=worker)
    thread.start()
    if not in_round_2.wait(timeout=600):
        raise RuntimeError("the run never reached round 2")
    token.cancel()  # the cancel button
    thread.join()
    stop = outcome.get("cancelled")
    if not isinstance(stop, Cancelled):
        raise RuntimeError("the run finished although it was cancelled")
    kept = stop.result
    print(f"cancelled: {stop}")
    print(f"  kept {len(kept.rounds)} round(s); top: {[m.identity for m in kept.top(3)]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="Folder for the gallery (default: a temp dir).")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        embedder = FaceEmbedder.from_registry(Registry.load())
        gallery = open_gallery(work, embedder)
        print(f"gallery: {len(gallery)} faces of {gallery.num_identities} identities")
        search(gallery, embedder, DEMO_DATA / "gallery" / "photo1_0724.jpg")

        config = PipelineConfig(
            rounds=args.rounds, candidates=args.candidates, steps=args.steps, stop_when_stable=0
        )
        pipeline = Pipeline.from_config(config, gallery=gallery).warm_up()
        evidence = Evidence.from_files(
            sketch=DEMO_DATA / "probes" / "sketch_photo1_0724.png",
            text="a smiling man with brown hair, brown eyes, red lips and tanned skin",
        )
        run_with_progress(pipeline, evidence)
        run_and_cancel(pipeline, evidence)


if __name__ == "__main__":
    main()
