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

The results are written after every (size, retriever) block, so a long run (1e6 faces
takes hours on a shared 2-core CPU) keeps what it finished. With
``FACEFIT_BENCH_RESUME=1`` a run reads the rows already in ``gallery_milvus.json``
(when its probes, HNSW options and ef sweep are the same) and measures only the blocks
that are missing; the faces of a size are the same in every run (seeded by the size),
so the resumed rows compare with the kept ones. ``FACEFIT_BENCH_EF`` sets the ef sweep
(default ``16,32,64,128,256``). Each size runs Milvus, then ScaNN, then hnswlib.
``FACEFIT_BENCH_WORK=DIR`` keeps each finished Milvus Lite build there, so a resumed
run opens it instead of building it again (a million faces take most of an hour to
enter Milvus Lite here).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
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
RESUME = os.environ.get("FACEFIT_BENCH_RESUME") == "1"
PROBES = 300
HNSW = {"M": 32, "ef_construction": 128}
EF_SWEEP = tuple(int(e) for e in os.environ.get("FACEFIT_BENCH_EF", "16,32,64,128,256").split(","))
MILVUS_TIMEOUT = float(os.environ.get("FACEFIT_BENCH_MILVUS_TIMEOUT", "1800"))
"""Seconds per Milvus call: the retriever's 30 s default is too short to reopen 1e5 faces
in Milvus Lite on a loaded 2-core CPU (counting the faces took longer, 2026-12-07)."""
LABELS = {"milvus": "milvus (Lite, HNSW)", "scann": "scann", "hnswlib": "hnswlib"}
_NAMES = {label: name for name, label in LABELS.items()}
WORK = os.environ.get("FACEFIT_BENCH_WORK")
CASES = [(n, name) for n in SIZES for name in ("milvus", "scann", "hnswlib")]
ROWS: list[dict] = []
BLOCKS: list[dict] = []
_DATA: dict[int, tuple] = {}


def _meta() -> dict:
    meta = {
        **run_meta("bench_gallery_milvus.py", SIZES),
        "probes": PROBES,
        "hnsw_options": HNSW,
        "ef_sweep": list(EF_SWEEP),
        "milvus_timeout_s": MILVUS_TIMEOUT,
        "versions": {p: version(p) for p in ("pymilvus", "milvus-lite", "faiss-cpu", "hnswlib")},
        "note": "run with nice -n 19 while a generator training job used the CPUs",
    }
    command = (
        meta["command"]
        .replace(" --benchmark-enable", "")
        .replace(" pytest ", " nice -n 19 pytest ")
    )
    meta["command"] = "FACEFIT_BENCH_EF=" + ",".join(map(str, EF_SWEEP)) + " " + command
    return meta


def _resume() -> None:
    """Take the rows of an earlier run of the same design (``FACEFIT_BENCH_RESUME=1``)."""
    path = Path(RESULTS or "") / "gallery_milvus.json"
    if not (RESUME and RESULTS and path.is_file()):
        return
    old = json.loads(path.read_text())
    same = {k: old["meta"].get(k) for k in ("probes", "hnsw_options", "ef_sweep")}
    if same != {"probes": PROBES, "hnsw_options": HNSW, "ef_sweep": list(EF_SWEEP)}:
        raise pytest.UsageError(
            f"FACEFIT_BENCH_RESUME: {path} was measured with {same}; move it away to start afresh"
        )
    BLOCKS.extend(b for b in old.get("blocks", []) if b["faces"] in SIZES)
    ROWS.extend(r for r in old["rows"] if _done(r["faces"], _NAMES[r["retriever"]]))


def _done(n: int, name: str) -> bool:
    return any(b["faces"] == n and b["retriever"] == LABELS[name] for b in BLOCKS)


_resume()


def _write() -> None:
    """Write the rows so far (atomically), in size then retriever order."""
    if not RESULTS:
        return
    out = Path(RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    order = list(LABELS.values())
    ROWS.sort(key=lambda r: (r["faces"], order.index(r["retriever"])))
    meta = _meta()
    for name, text in (
        (
            "gallery_milvus.json",
            json.dumps({"meta": meta, "blocks": BLOCKS, "rows": ROWS}, indent=2) + "\n",
        ),
        ("gallery_milvus.md", _markdown(meta)),
    ):
        tmp = out / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out / name)


def _dataset(n: int) -> tuple:
    """The faces and probes of size ``n`` and their exact top-10 (one size kept at a time)."""
    if n not in _DATA:
        _DATA.clear()
        data = clustered_faces(n, DIM, per_identity=5, n_probes=PROBES, seed=n % 9973)
        _DATA[n] = (data, _exact_top(data.vectors, data.probes, 10))
    return _DATA[n]


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


def _sweep(gallery: GalleryIndex, n: int, label: str, data, exact) -> list[dict]:
    rows = []
    for ef in EF_SWEEP:
        gallery.retriever.ef = ef
        rows.append({"faces": n, "retriever": label, "ef": ef,
                     **_measure(gallery.retriever, data.probes, exact)})  # fmt: skip
    return rows


def _milvus_build(n: int, data, registry, folder: Path) -> tuple[Path, float]:
    """The Milvus Lite file of ``n`` faces and its build rate; kept in ``FACEFIT_BENCH_WORK``.

    With ``FACEFIT_BENCH_WORK`` set, a finished build is kept there (``milvus-N.db`` and
    ``milvus-N.build.json`` with its rate), and a later run opens it instead of building
    again: the faces are the same (seeded by the size). A file without its ``.build.json``
    is a build that died halfway, and is built again.
    """
    work = Path(WORK) if WORK else folder
    db, done = work / f"milvus-{n}.db", work / f"milvus-{n}.build.json"
    if done.is_file():
        return db, json.loads(done.read_text())["build_faces_per_s"]
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(db, ignore_errors=True)
    location = f"milvus:{db}/faces"
    built, rate = _build("milvus", data, registry, uri=location, timeout=MILVUS_TIMEOUT, **HNSW)
    del built
    done.write_text(json.dumps({"faces": n, "build_faces_per_s": rate}) + "\n")
    return db, rate


def _milvus(n: int, data, exact, registry, folder: Path) -> list[dict]:
    db, rate = _milvus_build(n, data, registry, folder)
    started = time.perf_counter()
    reopened = GalleryIndex.load(f"milvus:{db}/faces", registry=registry, timeout=MILVUS_TIMEOUT)
    open_s = time.perf_counter() - started
    assert len(reopened) == n
    size_mb = sum(p.stat().st_size for p in db.rglob("*") if p.is_file()) / 1e6
    rows = _sweep(reopened, n, LABELS["milvus"], data, exact)
    rows[0].update(build_faces_per_s=round(rate), open_s=round(open_s, 2),
                   disk_mb=round(size_mb, 1))  # fmt: skip
    return rows


def _hnswlib(n: int, data, exact, registry, folder: Path) -> list[dict]:
    hnsw, rate = _build("hnswlib", data, registry, **HNSW)
    rows = _sweep(hnsw, n, LABELS["hnswlib"], data, exact)
    rows[0]["build_faces_per_s"] = round(rate)
    return rows


def _scann(n: int, data, exact, registry, folder: Path) -> list[dict]:
    if not scann_available():
        pytest.skip("ScaNN is not installed here")
    scann, rate = _build("scann", data, registry, train_at=min(10_000, n))
    row = {"faces": n, "retriever": "scann", "ef": None}
    row["leaves_to_search"] = getattr(scann.retriever, "leaves_to_search", None)
    return [{**row, **_measure(scann.retriever, data.probes, exact),
             "build_faces_per_s": round(rate)}]  # fmt: skip


MEASURE = {"milvus": _milvus, "scann": _scann, "hnswlib": _hnswlib}


@pytest.mark.parametrize(
    ("n", "name"), CASES, ids=[f"{n:.0e}-{name}".replace("+0", "") for n, name in CASES]
)
def test_milvus_beside_hnswlib_and_scann(n, name, tmp_path):
    if _done(n, name):
        pytest.skip(f"{n:,} faces on {name}: kept from the earlier run (FACEFIT_BENCH_RESUME=1)")
    started = time.perf_counter()
    data, exact = _dataset(n)
    registry = Registry.load(allow=["retrievers", "scann", "milvus"])
    rows = MEASURE[name](n, data, exact, registry, tmp_path)
    ROWS.extend(rows)
    BLOCKS.append({
        "faces": n,
        "retriever": LABELS[name],
        "seconds": round(time.perf_counter() - started, 1),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    })  # fmt: skip
    _write()


def _markdown(meta: dict) -> str:
    lines = [
        "# Milvus Lite beside hnswlib and ScaNN (same faces, same run)",
        "",
        f"- machine: {meta['machine']}; load average at the last write "
        f"{[round(x, 2) for x in meta['load_average_at_end']]}",
        f"- date: {meta['date']}; {meta['note']}",
        f"- command: `{meta['command']}`",
        f"- versions: {meta['versions']}",
        f"- 128-d SFace-like clustered faces; {meta['probes']} held-out probes; HNSW "
        f"{meta['hnsw_options']} for both Milvus and hnswlib; Milvus calls time out after "
        f"{meta['milvus_timeout_s']:g} s (the retriever's default is 30 s)",
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
    lines += [
        "",
        "Each block: wall seconds (build, reopen, every search), when it finished, load average then.",
        "",
        "| faces | retriever | seconds | finished (UTC) | load average |",
        "|---:|---|---:|---|---|",
    ]
    for b in BLOCKS:
        lines.append(
            f"| {b['faces']:,} | {b['retriever']} | {b['seconds']:,} | {b['finished']} | "
            f"{b['load_average']} |"
        )
    return "\n".join(lines) + "\n"
