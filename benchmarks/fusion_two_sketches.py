"""Two witnesses' sketches against either alone: rank-1 on the FS2K development split.

    python benchmarks/fusion_two_sketches.py ../shared/data --out benchmarks/results/fusion_two_sketches.json

Each development probe's own FS2K sketch is witness **A**. Two kinds of second witness **B**:

- ``other-photo``: the FS2K artist sketch of *another* development photo of the same
  person (FS2K holds several photos of one person under separate pair ids), preferring
  one drawn in a different FS2K style. It is drawn by an artist from a different
  photo, so it is a second, independent drawing of the person; only probes whose
  person has another development pair have one, and the comparison is at the person
  level (the true identity is the person).
- ``simple``: :func:`facefit.imaging.sketch.simple_sketch` (XDoG) of the probe's own
  photo. Every probe has one, but it is traced from the very gallery photo it is
  matched against, so it flatters B and A+B; it is the simple sketch the issue allows.

A+B goes through the pipeline's several-witness scoring
(:func:`facefit.pipeline.direct.direct_scores` with two sketches: the mean of each
identity's best cosine over the sketches, matched by the shipped sketch matcher), which
ranks exactly as the fused score of a sketch-only profile (one positive weight). Ranks are
taken in the 1,058-photo gallery of ``facefit eval --large-gallery`` (200 development
photos + 858 training photos) and in its 200 development photos alone (a column subset:
an identity's score does not depend on the others). McNemar tests are exact, two-sided,
on the same probes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from facefit.datasets import splits
from facefit.datasets.persons import load_persons
from facefit.evaluation.modes import EvalContext
from facefit.evaluation.readers import read_fs2k
from facefit.imaging.images import load_image
from facefit.imaging.sketch import simple_sketch
from facefit.pipeline.direct import direct_scores
from facefit.registry import Registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_eval_runs import mcnemar_p

MATCHER = "sketch-matcher"


def second_sketches(annotations: dict[str, dict], dev: list[str], person_of) -> dict[str, str]:
    """Per development pair with another development pair of its person: that pair's id
    (the first by id drawn in another FS2K style, else the first by id)."""
    by_person: dict[str, list[str]] = {}
    for pid in sorted(dev):
        by_person.setdefault(person_of(pid), []).append(pid)
    out = {}
    for pid in sorted(dev):
        others = [o for o in by_person[person_of(pid)] if o != pid]
        if not others:
            continue
        style = annotations[pid].get("style")
        different = [o for o in others if annotations[o].get("style") != style]
        out[pid] = (different or others)[0]
    return out


def rank1(scores: dict[str, float], identities: list[str]) -> str:
    """The identity ranked first among ``identities`` (ties: the first by id)."""
    return max(sorted(identities), key=lambda i: scores.get(i, -np.inf))


def compare(a: list[bool], b: list[bool]) -> dict:
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    return {"only_first": only_a, "only_second": only_b, "mcnemar_p": mcnemar_p(only_a, only_b)}


def unique_pairs(rows: list[dict]) -> list[dict]:
    """Rows with a second sketch, one per unordered pair of sketches (the first by probe
    id): the probe of pair i with j's sketch fuses the same two drawings as j's with i's."""
    seen, out = set(), []
    for row in sorted(rows, key=lambda r: r["probe"]):
        if "other" not in row:
            continue
        key = frozenset((row["probe"], row["other"]))
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def person_sign_test(rows: list[dict], first: str, second: str) -> dict:
    """Per person, the mean of ``first`` less the mean of ``second`` over its probes;
    an exact two-sided sign test over the persons where they differ (each person once,
    however many photos it has)."""
    by_person: dict[str, list[float]] = {}
    for row in rows:
        by_person.setdefault(row["person"], []).append(float(row[first]) - float(row[second]))
    means = [float(np.mean(v)) for v in by_person.values()]
    better, worse = sum(m > 0 for m in means), sum(m < 0 for m in means)
    return {
        "persons": len(means),
        "better": better,
        "worse": worse,
        "sign_test_p": mcnemar_p(better, worse),  # the same exact binomial test
    }


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Rank-1 of A, B and A+B per second-sketch kind, gallery and level, with exact
    McNemar tests on all probes, on unique sketch pairs, and a sign test over persons."""
    summary: dict[str, dict] = {}
    for b in ("other", "simple"):
        subsets = {"probes": [r for r in rows if f"200/{b}/photo" in r]}
        if b == "other":
            subsets["unique pairs"] = unique_pairs(rows)
        levels = ("person",) if b == "other" else ("photo", "person")
        for which, subset in subsets.items():
            for gallery in ("200", "1058"):
                for level in levels:

                    def key(name, g=gallery, lv=level):
                        return f"{g}/{name}/{lv}"

                    fused = [r[key(f"A+{b}")] for r in subset]
                    first = [r[key("A")] for r in subset]
                    second = [r[key(b)] for r in subset]
                    summary[f"{b}/{which}/{gallery}/{level}"] = {
                        "probes": len(subset),
                        "persons": len({r["person"] for r in subset}),
                        "rank1_A": float(np.mean(first)),
                        "rank1_B": float(np.mean(second)),
                        "rank1_A+B": float(np.mean(fused)),
                        "A+B_vs_A": compare(fused, first),
                        "A+B_vs_B": compare(fused, second),
                        "A+B_vs_A_by_person": person_sign_test(subset, key(f"A+{b}"), key("A")),
                        "A+B_vs_B_by_person": person_sign_test(subset, key(f"A+{b}"), key(b)),
                    }
    return summary


def print_table(summary: dict[str, dict]) -> None:
    print(
        "| second sketch B | probes | gallery | level | probes (persons) | A | B | A+B "
        "| A+B vs A: only/only, McNemar p; persons better/worse, sign p "
        "| A+B vs B: the same |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---|---|")
    for key, s in summary.items():
        b, which, gallery, level = key.split("/")
        cells = []
        for other in ("A", "B"):
            v, w = s[f"A+B_vs_{other}"], s[f"A+B_vs_{other}_by_person"]
            cells.append(
                f"{v['only_first']}/{v['only_second']}, p={v['mcnemar_p']:.2g}; "
                f"{w['better']}/{w['worse']}, p={w['sign_test_p']:.2g}"
            )
        print(
            f"| {b} | {which} | {gallery} | {level} | {s['probes']} ({s['persons']}) "
            f"| {s['rank1_A']:.1%} | {s['rank1_B']:.1%} | {s['rank1_A+B']:.1%} "
            f"| {cells[0]} | {cells[1]} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--summarize", action="store_true", help="recompute the summary of an existing --out"
    )
    args = parser.parse_args()
    if args.summarize:
        done = json.loads(args.out.read_text(encoding="utf-8"))
        done["summary"] = summarize(done["probes"])
        args.out.write_text(json.dumps(done, indent=1) + "\n", encoding="utf-8")
        print_table(done["summary"])
        return
    data = args.data
    split = splits.fs2k_split(data)
    persons = load_persons(data)
    person_of = persons.fs2k_person
    folder = data / splits.FS2K_DIR
    annotations = {a["id"]: a for a in splits.load_fs2k_annotations(data)}
    manifest = read_fs2k(
        folder,
        probe_sets=["sketch"],
        ids=split.dev,
        gallery_only=split.train,
        name="fs2k-dev-large-gallery",
        persons=person_of,
    )
    context = EvalContext(manifest, Registry.load(), matcher=MATCHER)
    t0 = time.time()
    index = context.gallery_index(MATCHER)
    embedder = context.embedder(MATCHER)
    enrol_s = time.time() - t0
    large = list(context.gallery(MATCHER).identities)
    small = [i for i in large if i in set(split.dev)]
    others = second_sketches(annotations, list(split.dev), person_of)
    dev = sorted(split.dev)[: args.limit] if args.limit else sorted(split.dev)

    def score(images: list[np.ndarray]) -> dict[str, float]:
        found = direct_scores(
            {"sketch": [(im, None) for im in images]},
            None,
            detector=embedder.detector,
            gallery=index,
            encoder=embedder.encoder,
            sketch_gallery=index,
            sketch_encoder=embedder.encoder,
        )
        return found.scores["sketch"]

    rows = []
    t1 = time.time()
    for pid in dev:
        a = load_image(folder / annotations[pid]["sketch"])
        simple = simple_sketch(load_image(folder / annotations[pid]["photo"]))
        simple = np.repeat(simple[:, :, None], 3, axis=2)
        row = {"probe": pid, "person": person_of(pid), "style": annotations[pid].get("style")}
        variants = {"A": score([a]), "simple": score([simple]), "A+simple": score([a, simple])}
        if pid in others:
            b = load_image(folder / annotations[others[pid]]["sketch"])
            variants |= {"other": score([b]), "A+other": score([a, b])}
            row["other"] = others[pid]
            row["other_style"] = annotations[others[pid]].get("style")
        for name, s in variants.items():
            for gallery, ids in (("200", small), ("1058", large)):
                top = rank1(s, ids)
                row[f"{gallery}/{name}/photo"] = top == pid
                row[f"{gallery}/{name}/person"] = person_of(top) == person_of(pid)
        # the several-witness score is the mean of the single-witness scores
        mean = {i: (variants["A"][i] + variants["simple"][i]) / 2 for i in variants["A"]}
        assert max(abs(mean[i] - variants["A+simple"][i]) for i in mean) < 2e-6
        rows.append(row)
    probe_s = (time.time() - t1) / max(1, len(dev))

    summary = summarize(rows)
    out = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "matcher": getattr(embedder.encoder, "version", None),
        "split_fingerprint": split.fingerprint,
        "gallery": {"small": len(small), "large": len(large)},
        "enrol_seconds": round(enrol_s, 1),
        "seconds_per_probe_all_variants": round(probe_s, 3),
        "summary": summary,
        "probes": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print_table(summary)


if __name__ == "__main__":
    main()
