"""The ``milvus`` retriever on Milvus Lite beside hnswlib and ScaNN, on the same faces in one run.

    FACEFIT_BENCH_SIZES=1e4,1e5 FACEFIT_BENCH_RESULTS=benchmarks/results \\
        nice -n 19 pytest benchmarks/bench_gallery_milvus.py -o python_files='bench_*.py'

Same data and definitions as ``bench_gallery.py``: 128-d faces clustered like SFace
identities, probes that are new faces of gallery identities, recall@10 = share of the
exact top-10 in the top-10 found. Each gallery is built as ``facefit gallery build``
builds one, through ``GalleryIndex.add`` in batches of 10,000 (for Milvus that writes
every face with its identity and provenance to the collection). Milvus (HNSW, which
Milvus Lite runs on faiss) and hnswlib are built with the same ``M`` and
``ef_construction`` and searched at the same ``ef``; ScaNN with its defaults (leaves
tuned for recall@10 0.99 when it trains). Writes ``gallery_milvus.json`` and
``gallery_milvus.md`` under ``FACEFIT_BENCH_RESULTS``. Skipped without Milvus Lite.
"""

from __future__ import annotations

import json
import os
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from bench_gallery import DIM, ENCODER, _exact_top, recalls, run_meta

from facefit import Registry
from facefit.gallery import GalleryIndex
from facefit.gallery.choice import scann_available
from facefit.gallery.synthetic import clustered_faces

pytest.importorskip(
    "milvus_lite", reason="Milvus Lite is not installed (pip install 'facefit[milvus]')"
)

SIZES = [int(float(s)) for s in os.environ.get("FACEFIT_BENCH_SIZES", "1e4").split(",")]
RESULTS = os.environ.get("FACEFIT_BENCH_RESULTS")
PROBES = 300
HNSW = {"M": 32, "ef_construction": 128}
EF_SWEEP = (16, 32, 64, 128, 256)
ROWS: list[dict] = []


@pytest.fixture(scope="module", autouse=True)
def write_results():
    yield
    if not RESULTS:
        return
    out = Path(RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        **run_meta("bench_gallery_milvus.py", SIZES),
        "probes": PROBES,
        "hnsw_options": HNSW,
        "versions": {p: version(p) for p in ("pymilvus", "milvus-lite", "faiss-cpu", "hnswlib")},
        "note": "run with nice -n 19 while a generator training job used the CPUs",
    }
    meta["command"] = "nice -n 19 " + meta["command"].replace(" --benchmark-enable", "")
    (out / "gallery_milvus.json").write_text(
        json.dumps({"meta": meta, "rows": ROWS}, indent=2) + "\n"
    )
    (out / "gallery_milvus.md").write_text(_markdown(meta))


def _build(name: str, data, registry, **options) -> tuple[GalleryIndex, float]:
    gallery = GalleryIndex.create(ENCODER, retriever=name, registry=registry, **options)
    names = [f"id{i}" for i in data.identities]
    started = time.perf_counter()
    for start in range(0, len(data.vectors), 10_000):
        gallery.add(data.vectors[start : start + 10_000], names[start : start + 10_000])
    if name == "milvus":
        gallery.save()  # commit and flush
    return gallery, len(data.vectors) / (time.perf_counter() - started)


def _measure(retriever, probes: np.ndarray, exact: np.ndarray) -> dict:
    found = np.empty((len(probes), 10), np.int64)
    started, cpu = time.perf_counter(), time.process_time()
    for i, probe in enumerate(probes):
        found[i] = retriever.search(probe, 10)[1][0]
    single = (time.perf_counter() - started) / len(probes) * 1e3
    cpu = (time.process_time() - cpu) / len(probes) * 1e3  # Milvus Lite's server threads too
    started = time.perf_counter()
    for start in range(0, len(probes), 4):  # one round of the iterative loop: 4 candidates
        retriever.search(probes[start : start + 4], 10)
    batched4 = (time.perf_counter() - started) / len(probes) * 1e3
    return {
        **{k: round(v, 4) for k, v in recalls(found, exact).items()},
        "ms_per_query": round(single, 3),
        "cpu_ms_per_query": round(cpu, 3),
        "ms_per_query_batch4": round(batched4, 3),
    }


@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"{n:.0e}".replace("+0", ""))
def test_milvus_beside_hnswlib_and_scann(n, tmp_path):
    data = clustered_faces(n, DIM, per_identity=5, n_probes=PROBES, seed=n % 9973)
    exact = _exact_top(data.vectors, data.probes, 10)
    registry = Registry.load(allow=["retrievers"])
    location = f"milvus:{tmp_path / 'bench.db'}/faces"

    milvus, rate = _build("milvus", data, registry, uri=location, **HNSW)
    started = time.perf_counter()
    reopened = GalleryIndex.load(location, registry=registry)
    open_s = time.perf_counter() - started
    assert len(reopened) == n
    size_mb = sum(p.stat().st_size for p in (tmp_path / "bench.db").rglob("*") if p.is_file()) / 1e6
    common = {"faces": n}
    for ef in EF_SWEEP:
        milvus.retriever.ef = ef
        ROWS.append({**common, "retriever": "milvus (Lite, HNSW)", "ef": ef,
                     **_measure(milvus.retriever, data.probes, exact)})  # fmt: skip
    ROWS[-len(EF_SWEEP)].update(build_faces_per_s=round(rate), open_s=round(open_s, 2),
                                disk_mb=round(size_mb, 1))  # fmt: skip

    hnsw, rate = _build("hnswlib", data, registry, **HNSW)
    for ef in EF_SWEEP:
        hnsw.retriever.ef = ef
        ROWS.append({**common, "retriever": "hnswlib", "ef": ef,
                     **_measure(hnsw.retriever, data.probes, exact)})  # fmt: skip
    ROWS[-len(EF_SWEEP)]["build_faces_per_s"] = round(rate)
    del hnsw

    if scann_available():
        scann, rate = _build("scann", data, registry, train_at=min(10_000, n))
        row = {**common, "retriever": "scann", "ef": None}
        row["leaves_to_search"] = getattr(scann.retriever, "leaves_to_search", None)
        ROWS.append({**row, **_measure(scann.retriever, data.probes, exact),
                     "build_faces_per_s": round(rate)})  # fmt: skip


def _markdown(meta: dict) -> str:
    lines = [
        "# Milvus Lite beside hnswlib and ScaNN (same faces, same run)",
        "",
        f"- machine: {meta['machine']}; load average at the end {meta['load_average_at_end']}",
        f"- date: {meta['date']}; {meta['note']}",
        f"- command: `{meta['command']}`",
        f"- versions: {meta['versions']}",
        f"- 128-d SFace-like clustered faces; {meta['probes']} held-out probes; HNSW "
        f"{meta['hnsw_options']} for both Milvus and hnswlib",
        "",
        "| faces | retriever | ef | recall@1 | recall@10 | ms/query | CPU ms/query "
        "| ms/query (batches of 4) | build faces/s | open s | disk MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ROWS:
        ef = r["ef"] if r["ef"] is not None else f"leaves {r.get('leaves_to_search')}"
        lines.append(
            f"| {r['faces']:,} | {r['retriever']} | {ef} | {r['recall@1']:.3f} | "
            f"{r['recall@10']:.3f} | {r['ms_per_query']:.2f} | {r['cpu_ms_per_query']:.2f} | "
            f"{r['ms_per_query_batch4']:.2f} | "
            f"{r.get('build_faces_per_s', '')} | {r.get('open_s', '')} | {r.get('disk_mb', '')} |"
        )
    return "\n".join(lines) + "\n"
