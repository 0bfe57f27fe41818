"""The ``scann`` retriever: recall against exact search, ms per query and build rate, to a million faces.

    FACEFIT_BENCH_SIZES=1e5,1e6 FACEFIT_BENCH_RESULTS=benchmarks/results \\
        pytest benchmarks/bench_gallery_scann.py -o python_files='bench_*.py' --benchmark-enable

Same data, probes and definitions as ``bench_gallery.py`` (hnswlib): 128-d faces
clustered like SFace identities, 1,000 probes that are new faces of gallery
identities, recall@10 = share of the exact top-10 in the approximate top-10. The
gallery is built as ``facefit gallery build`` builds one, through
``GalleryIndex.add`` in batches (here of 100,000), so the build time includes the
index's retraining as the gallery doubles. Writes ``gallery_scann.json`` and
``gallery_scann.md`` under ``FACEFIT_BENCH_RESULTS``. Skipped without ScaNN.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from bench_gallery import (  # noqa: F401 (celeba_sface is a fixture)
    DIM,
    ENCODER,
    N_PROBES,
    _exact_top,
    celeba_sface,
    held_out_probes,
    identity_recall,
    recalls,
    run_meta,
    save_and_load,
    time_searches,
)

from facefit import Registry
from facefit.gallery import GalleryIndex
from facefit.gallery.synthetic import clustered_faces

pytest.importorskip("scann", reason="ScaNN is not installed (pip install scann; Linux only)")

SIZES = [int(float(s)) for s in os.environ.get("FACEFIT_BENCH_SIZES", "1e5").split(",")]
RESULTS = os.environ.get("FACEFIT_BENCH_RESULTS")
SWEEP = (0.1, 0.2, 0.3, 0.4, 0.55, 0.7, 0.85)
ROWS: dict[str, list[dict]] = {"build": [], "search": [], "persist": [], "real": []}
BUILT: dict[int, GalleryIndex] = {}


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n:.0e}".replace("+0", ""))
def dataset(request):
    n = request.param
    data = clustered_faces(n, DIM, per_identity=5, n_probes=N_PROBES, seed=n % 9973)
    return n, data, _exact_top(data.vectors, data.probes, 100)


@pytest.fixture(scope="module", autouse=True)
def write_results():
    yield
    if not RESULTS:
        return
    out = Path(RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**run_meta("bench_gallery_scann.py", SIZES), "scann_version": _version("scann")}
    (out / "gallery_scann.json").write_text(json.dumps({"meta": meta, **ROWS}, indent=2) + "\n")
    (out / "gallery_scann.md").write_text(_markdown(meta))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def test_build_throughput(benchmark, dataset):
    n, data, _ = dataset
    registry = Registry.load(allow=["retrievers", "scann", "milvus"])
    names = [f"id{i}" for i in data.identities]

    def build() -> GalleryIndex:
        gallery = GalleryIndex.create(ENCODER, retriever="scann", registry=registry)
        for start in range(0, n, 100_000):
            gallery.add(data.vectors[start : start + 100_000], names[start : start + 100_000])
        return gallery

    BUILT.clear()
    started, cpu = time.perf_counter(), time.process_time()
    BUILT[n] = benchmark.pedantic(build, rounds=1, iterations=1)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    retriever = BUILT[n].retriever
    row = {
        "faces": n,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "faces_per_s": round(n / seconds),
        "faces_per_s_idle_estimate": round(n / (cpu / retriever.num_threads)),
        "threads": retriever.num_threads,
        "leaves": retriever.num_leaves,
        "trained_on": retriever._trained_on,
        **retriever.params(),
    }
    benchmark.extra_info.update(row)
    ROWS["build"].append(row)


def test_recall_and_latency(benchmark, dataset):
    n, data, exact = dataset
    gallery = BUILT.get(n)
    if gallery is None:
        pytest.skip("the build benchmark did not run")
    retriever = gallery.retriever
    default = retriever.leaves_to_search
    for share in sorted({*SWEEP, default}):
        retriever.leaves_to_search = share
        timed = time_searches(retriever, data.probes)
        found, batched_found = timed.pop("found"), timed.pop("batched_found")
        started = time.perf_counter()  # batches of 4: one round of the loop's candidates
        for i in range(0, N_PROBES, 4):
            retriever.search(data.probes[i : i + 4], 10)
        by_four = (time.perf_counter() - started) / N_PROBES * 1e3
        ROWS["search"].append(
            {
                "faces": n,
                "leaves_to_search": share,
                "default": share == default,
                **{k: round(v, 4) for k, v in recalls(found, exact).items()},
                "batched_recall@10": round(recalls(batched_found, exact)["recall@10"], 4),
                **timed,
                "ms_per_query_batches_of_4": round(by_four, 3),
            }
        )
    retriever.leaves_to_search = default
    probes = iter(np.tile(data.probes, (100, 1)))
    benchmark.pedantic(lambda: retriever.search(next(probes), 10), rounds=300)
    benchmark.extra_info.update(
        next(r for r in ROWS["search"] if r["faces"] == n and r.get("default"))
    )


def test_identity_search(benchmark, dataset):
    n, data, exact = dataset
    gallery = BUILT.get(n)
    if gallery is None:
        pytest.skip("the build benchmark did not run")
    recall = identity_recall(gallery, data, exact)
    probes = iter(np.tile(data.probes, (100, 1)))
    benchmark.pedantic(lambda: gallery.search(next(probes), 10), rounds=200)
    row = {
        "faces": n,
        "identity_search": True,
        "identity_recall@10": recall,
        "ms_per_query": round(benchmark.stats.stats.median * 1e3, 3),
    }
    benchmark.extra_info.update(row)
    ROWS["search"].append(row)


def test_save_and_load(tmp_path, dataset):
    n, data, _ = dataset
    gallery = BUILT.get(n)
    if gallery is None:
        pytest.skip("the build benchmark did not run")
    loaded, row = save_and_load(gallery, tmp_path / "g")
    assert len(loaded) == n and loaded.retriever.trained
    same = (
        loaded.retriever.search(data.probes[:50], 10)[1]
        == gallery.retriever.search(data.probes[:50], 10)[1]
    )
    assert same.all()
    ROWS["persist"].append(row)
    BUILT.clear()


def test_real_sface_embeddings(celeba_sface):  # noqa: F811 (the fixture imported above)
    """ScaNN on real SFace vectors (one held-out photo per identity as probe), and on
    synthetic vectors of the same size: real galleries should be no easier.

    The index is forced (``train_at=1000``) although ``auto`` would search a gallery
    this small exactly.
    """
    from facefit_plugins.retrievers.scann import ScannRetriever

    vectors, identities = celeba_sface
    gallery, probes = held_out_probes(vectors, identities)
    synthetic = clustered_faces(
        len(gallery), DIM, per_identity=len(gallery) / len(probes), n_probes=len(probes), seed=7
    )
    cases = {
        "real": (gallery, probes),
        "synthetic": (synthetic.vectors, synthetic.probes),
    }
    for name, (g, p) in cases.items():
        truth = _exact_top(g, p, 10)
        retriever = ScannRetriever(DIM, train_at=1000, recall_target=None)
        retriever.add(np.arange(len(g)), g)
        for share in (0.1, 0.2, 0.3, 0.55):
            retriever.leaves_to_search = share
            found = np.stack([retriever.search(q, 10)[1][0] for q in p])
            ROWS["real"].append(
                {
                    "case": name,
                    "faces": len(g),
                    "probes": len(p),
                    "leaves": retriever.num_leaves,
                    "leaves_to_search": share,
                    **{k: round(v, 4) for k, v in recalls(found, truth).items()},
                }
            )


def _markdown(meta: dict) -> str:
    lines = [
        '# Gallery retrieval with ScaNN (`retriever="scann"`)',
        "",
        f"- machine: {meta['machine']}; load average at the end "
        f"{tuple(round(x, 1) for x in meta['load_average_at_end'])}",
        f"- date: {meta['date']}; scann {meta['scann_version']}",
        f"- command: `{meta['command']}`",
        f"- data and definitions as in `gallery.md` (hnswlib); {meta['probes']} probes per size",
        "",
        "## Build (through `GalleryIndex.add`, 100,000 faces per call, retraining included)",
        "",
        "| faces | seconds | faces/s | CPU s | faces/s on idle cores (CPU-time estimate) | leaves | last trained on |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['faces']:,} | {r['seconds']} | {r['faces_per_s']:,} | {r['cpu_seconds']} "
        f"| {r['faces_per_s_idle_estimate']:,} | {r['leaves']:,} | {r['trained_on']:,} |"
        for r in ROWS["build"]
    ]
    lines += [
        "",
        "## Recall against exact search, ms per query",
        "",
        "One query at a time on one thread (wall and CPU ms); batched: 1,000 queries at once "
        "on both cores, wall ms per query; by 4: batches of 4 queries (the loop's candidates "
        "of one round) on both cores.",
        "",
        "| faces | leaves_to_search | recall@1 | recall@10 | ms/query | CPU ms/query "
        "| ms/query batched | ms/query by 4 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['faces']:,} | {r['leaves_to_search']}{' (default)' if r['default'] else ''} "
        f"| {r['recall@1']} | {r['recall@10']} | {r['ms_per_query']} | {r['cpu_ms_per_query']} "
        f"| {r['ms_per_query_batched']} | {r['ms_per_query_batches_of_4']} |"
        for r in ROWS["search"]
        if "leaves_to_search" in r
    ]
    lines += [
        "",
        "## Identity search (GalleryIndex.search, max fusion, default options)",
        "",
        "| faces | identity recall@10 | ms/query |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {r['faces']:,} | {r['identity_recall@10']} | {r['ms_per_query']} |"
        for r in ROWS["search"]
        if r.get("identity_search")
    ]
    lines += [
        "",
        "## Real SFace embeddings (CelebA subset) against synthetic ones of the same size",
        "",
        "Held-out photo per identity as probe; index forced (train_at=1000). A lower recall",
        "means harder data.",
        "",
        "| case | faces | leaves | leaves_to_search | recall@1 | recall@10 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['case']} | {r['faces']:,} | {r['leaves']} | {r['leaves_to_search']} "
        f"| {r['recall@1']} | {r['recall@10']} |"
        for r in ROWS["real"]
    ]
    lines += ["", "## Save and load (checksums verified)", "", "| faces | save s | load s | MB |"]
    lines += ["|---:|---:|---:|---:|"]
    lines += [
        f"| {r['faces']:,} | {r['save_s']} | {r['load_verified_s']} | {r['mb']} |"
        for r in ROWS["persist"]
    ]
    return "\n".join(lines) + "\n"
