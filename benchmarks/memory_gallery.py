"""Memory of a million-face gallery: peak and final RSS around building it.

    python benchmarks/memory_gallery.py [scann|hnswlib] [faces]

Builds through ``GalleryIndex.add`` in batches of 100,000 (as ``facefit gallery
build`` does) and prints the resident memory before the gallery (the synthetic
vectors themselves: 512 MB at a million) and after, and the peak.
"""

from __future__ import annotations

import os
import resource
import sys

from facefit import Registry
from facefit.gallery import EncoderInfo, GalleryIndex
from facefit.gallery.synthetic import clustered_faces


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return kb / 1e3


def main() -> None:
    retriever = sys.argv[1] if len(sys.argv) > 1 else "scann"
    n = int(float(sys.argv[2])) if len(sys.argv) > 2 else 1_000_000
    data = clustered_faces(n, 128, n_probes=10, seed=1)
    names = [f"id{i}" for i in data.identities]
    before = rss_mb()
    gallery = GalleryIndex.create(
        EncoderInfo("synthetic", "1", 128),
        retriever=retriever,
        registry=Registry.load(allow=["retrievers", "scann", "milvus"]),
    )
    for start in range(0, n, 100_000):
        gallery.add(data.vectors[start : start + 100_000], names[start : start + 100_000])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(
        f"{retriever}, {n:,} faces: RSS {before:,.0f} MB before the gallery, "
        f"{rss_mb():,.0f} MB after (+{rss_mb() - before:,.0f}), peak {peak:,.0f} MB"
    )


if __name__ == "__main__":
    main()
