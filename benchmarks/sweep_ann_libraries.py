"""How close can any index get to recall@10 0.99 at 1 ms per query, at a million faces, on 2 cores?

    python benchmarks/sweep_ann_libraries.py 1e6 scann-soar 2000 400/600 1000
    python benchmarks/sweep_ann_libraries.py 1e6 scann 2000 800/1100 1000
    python benchmarks/sweep_ann_libraries.py 1e6 scann-numpy 2000 1100 1000
    python benchmarks/sweep_ann_libraries.py 1e6 faiss 2048 800/1200 30

Arguments: faces, library, partitions (leaves / IVF lists), leaves (nprobe) to scan
per query as a /-list, and ScaNN's re-scored candidates (faiss: the refine
``k_factor``). Libraries:

- ``scann``: what the ``scann`` retriever builds (spherical k-means leaves, 4-bit
  anisotropic codes with 2 dimensions per block, exact re-scoring);
- ``scann-soar``: the same with SOAR spilling (λ=1), which the retriever does not use
  because ScaNN 1.4.2 crashes deleting from a spilled index;
- ``scann-numpy``: the same without ScaNN's re-scoring: ScaNN returns its best
  ``reorder`` candidates by code score and numpy re-scores them against the vectors
  (this would let the retriever drop ScaNN's copy of the vectors);
- ``faiss``: IVF + 4-bit PQ fast-scan (64 sub-quantizers) + exact refinement
  (``pip install faiss-cpu``; not a facefit dependency).

Data and recall as in ``bench_gallery.py``: 128-d SFace-like faces, 1,000 probes
(new photos of enrolled people), recall@10 = share of the exact top-10 found. Query
time is one query at a time on one thread. Prints one line per setting.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from facefit.gallery.synthetic import clustered_faces


def exact_top10(vectors: np.ndarray, probes: np.ndarray) -> np.ndarray:
    out = np.empty((len(probes), 10), np.int64)
    for start in range(0, len(probes), 50):
        scores = probes[start : start + 50] @ vectors.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(scores, top, 1), 1)
        out[start : start + 50] = np.take_along_axis(top, order, 1)
    return out


def timed(search, probes: np.ndarray) -> tuple[np.ndarray, float, float]:
    search(probes[0])
    wall, cpu = time.perf_counter(), time.process_time()
    found = np.array([search(q) for q in probes])
    n = len(probes)
    return found, (time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3


def main() -> None:
    n, library, partitions = int(float(sys.argv[1])), sys.argv[2], int(sys.argv[3])
    scans = [int(x) for x in sys.argv[4].split("/")]
    rescore = int(sys.argv[5])
    data = clustered_faces(n, 128, per_identity=5, n_probes=1000, seed=n % 9973)
    truth = exact_top10(data.vectors, data.probes)

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(set(f[:10]) & set(t)) / 10 for f, t in zip(found, truth)]))

    started, cpu = time.perf_counter(), time.process_time()
    if library.startswith("scann"):
        numpy_rescore = library == "scann-numpy"
        import scann

        builder = (
            scann.scann_ops_pybind.builder(data.vectors, 10, "dot_product")
            .tree(
                num_leaves=partitions,
                num_leaves_to_search=scans[0],
                training_sample_size=min(n, 250_000),
                spherical=True,
                **({"soar_lambda": 1.0} if library == "scann-soar" else {}),
            )
            .score_ah(2, anisotropic_quantization_threshold=0.2)
        )
        if not numpy_rescore:
            builder = builder.reorder(rescore)
        index = builder.build()
        index.set_num_threads(1)

        def search_with(scan):
            if not numpy_rescore:
                return lambda q: index.search(q, 10, rescore, scan)[0]

            def search(q):
                rows = np.asarray(index.search(q, rescore, rescore, scan)[0], dtype=np.int64)
                scores = data.vectors[rows] @ q
                top = np.argpartition(-scores, 10)[:10]
                return rows[top[np.argsort(-scores[top])]]

            return search
    elif library == "faiss":
        import faiss

        faiss.omp_set_num_threads(2)
        quantizer = faiss.IndexFlatIP(128)
        ivf = faiss.IndexIVFPQFastScan(
            quantizer, 128, partitions, 64, 4, faiss.METRIC_INNER_PRODUCT
        )
        index = faiss.IndexRefineFlat(ivf)
        sample = np.random.default_rng(0).choice(n, min(n, 40 * partitions), replace=False)
        index.train(data.vectors[sample])
        index.add(data.vectors)
        faiss.omp_set_num_threads(1)
        index.k_factor = rescore

        def search_with(scan):
            ivf.nprobe = scan
            return lambda q: index.search(q[None], 10)[1][0]
    else:
        raise SystemExit(f"unknown library {library!r}: scann, scann-soar, scann-numpy or faiss")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"{library} n={n:,} partitions={partitions}: built in {seconds:.1f} s "
        f"({n / seconds:,.0f} faces/s, {cpu:.1f} CPU s on 2 threads)",
        flush=True,
    )
    for scan in scans:
        found, wall, cpu_ms = timed(search_with(scan), data.probes)
        print(
            f"  scan {scan:>5} of {partitions}: recall@10 {recall(found):.4f}, "
            f"{wall:.3f} ms/query ({cpu_ms:.3f} CPU ms)",
            flush=True,
        )


if __name__ == "__main__":
    main()
