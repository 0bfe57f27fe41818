"""Sweep hnswlib's M and ef_construction on SFace-like faces: build rate, recall@1/@10, ms/query.

    python benchmarks/sweep_hnswlib.py 1e5 16/64 16/128 32/64 32/128 48/100

How the defaults of the ``hnswlib`` retriever were chosen (results:
``benchmarks/results/gallery_tuning.md``). Probes are 500 new faces of gallery
identities; recall is against exact search; ms/query is wall time of one query at
a time on one thread; the build uses all cores.
"""

from __future__ import annotations

import sys
import time

import hnswlib
import numpy as np

from facefit.gallery.synthetic import clustered_faces

EF_SWEEP = (64, 128, 256, 512, 1024)


def exact_top(vectors: np.ndarray, probes: np.ndarray, k: int = 10) -> np.ndarray:
    out = np.empty((len(probes), k), np.int64)
    for start in range(0, len(probes), 64):
        scores = probes[start : start + 64] @ vectors.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start : start + 64] = np.take_along_axis(top, order, axis=1)
    return out


def main(n: int, configs: list[tuple[int, int]]) -> None:
    data = clustered_faces(n, n_probes=500, seed=1)
    exact = exact_top(data.vectors, data.probes)
    for m, efc in configs:
        index = hnswlib.Index("ip", 128)
        index.init_index(n, M=m, ef_construction=efc)
        started = time.perf_counter()
        index.add_items(data.vectors, np.arange(n))
        cells = [f"M={m} efc={efc} build {n / (time.perf_counter() - started):.0f}/s"]
        for ef in EF_SWEEP:
            index.set_ef(ef)
            found = np.zeros((len(data.probes), 10), np.int64)
            started = time.perf_counter()
            for i, probe in enumerate(data.probes):
                found[i] = index.knn_query(probe[None], 10, num_threads=1)[0][0]
            ms = (time.perf_counter() - started) / len(data.probes) * 1e3
            r1 = np.mean(found[:, 0] == exact[:, 0])
            r10 = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
            cells.append(f"ef{ef}: {r1:.3f}/{r10:.4f} {ms:.2f}ms")
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main(int(float(sys.argv[1])), [tuple(map(int, c.split("/"))) for c in sys.argv[2:]])
