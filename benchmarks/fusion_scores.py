"""Dump per-source direct identity scores of FS2K probes against a gallery with distractors.

    python benchmarks/fusion_scores.py ../shared/data --which calibration --out out/fusion-scores/calibration.npz
    python benchmarks/fusion_scores.py ../shared/data --which dev --out out/fusion-scores/dev.npz

``calibration``: the calibration slice's probes (:func:`facefit.datasets.splits.fs2k_calibration`)
against its 100 photos plus the photos of every other training pair
(:func:`facefit.datasets.splits.fs2k_training`, 758, no dev photo): 858 identities.
``dev``: the development probes against the 1,058-photo gallery of ``facefit eval
--large-gallery`` (the 200 dev photos and the 858 training photos).

The small gallery (the probes' own photos) is a column subset of the large one, so one
dump serves both. Scores are exactly the fused mode's (:func:`direct_source_scores`),
with the shipped sketch matcher. Written as ``.npz``: per probe set ``<set>/<source>``
(probes × identities), plus ``identities``, ``persons`` (per identity), ``enrolled``
(whether an identity is in the small gallery), ``<set>/truth`` (the probe's column) and
``<set>/encoders`` (JSON). Used by benchmarks/fusion_calibration_gallery.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from facefit.datasets import splits
from facefit.datasets.persons import load_persons
from facefit.evaluation.evidence import load_probe
from facefit.evaluation.fused import direct_source_scores
from facefit.evaluation.modes import EvalContext
from facefit.evaluation.readers import read_fs2k
from facefit.registry import Registry

SETS = ("sketch", "sketch+lq8", "sketch+text", "sketch+text+lq8", "lq8")


def manifest(data: Path, which: str, probe_sets: list[str]):
    persons = load_persons(data)
    if which == "calibration":
        ids, extra = splits.fs2k_calibration(data), splits.fs2k_training(data)
        if set(ids) & set(splits.fs2k_split(data).dev) or set(extra) & set(
            splits.fs2k_split(data).dev
        ):
            raise SystemExit("calibration gallery touches the development split")
    else:
        split = splits.fs2k_split(data)
        ids, extra = split.dev, split.train
    return read_fs2k(
        data / splits.FS2K_DIR,
        probe_sets=probe_sets,
        ids=ids,
        gallery_only=extra,
        name=f"fs2k-{which}-large",
        persons=persons.fs2k_person,
    ), set(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--which", choices=("calibration", "dev"), required=True)
    parser.add_argument("--probe-sets", default=",".join(SETS))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sets = [s for s in args.probe_sets.split(",") if s]
    m, enrolled_ids = manifest(args.data, args.which, sets)
    context = EvalContext(m, Registry.load(), matcher="sketch-matcher")
    t0 = time.time()
    gallery = context.gallery(context.encoder)
    context.gallery(context.matcher)
    identities = list(gallery.identities)
    persons = m.persons or {}
    out: dict[str, np.ndarray] = {
        "identities": np.array(identities),
        "persons": np.array([persons.get(i, i) for i in identities]),
        "enrolled": np.array([i in enrolled_ids for i in identities]),
    }
    column = {i: j for j, i in enumerate(identities)}
    aligner = context.embedder(context.encoder)
    print(f"galleries enrolled in {time.time() - t0:.0f} s ({len(identities)} identities)")
    for probe_set in sets:
        per_probe: list[dict[str, np.ndarray]] = []
        truth, encoders = [], {}
        t1 = time.time()
        for probe in m.probes_of(probe_set):
            scores, found, _ = direct_source_scores(context, load_probe(m, probe, aligner))
            encoders.update(found)
            per_probe.append(scores)
            truth.append(column[probe.identity])
        missing = np.full(len(identities), np.nan, np.float32)  # a source not scored
        for source in encoders:
            out[f"{probe_set}/{source}"] = np.stack(
                [np.asarray(p.get(source, missing), np.float32) for p in per_probe]
            )
        out[f"{probe_set}/truth"] = np.array(truth)
        out[f"{probe_set}/encoders"] = np.array(json.dumps(encoders))
        print(f"{probe_set}: {len(truth)} probes, {time.time() - t1:.0f} s, {encoders}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
