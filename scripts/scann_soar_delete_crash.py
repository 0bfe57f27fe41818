"""Why the ``scann`` retriever does not use SOAR spilling: ScaNN 1.4.2 crashes deleting from it.

    python scripts/scann_soar_delete_crash.py soar    # dies with SIGSEGV (shell status 139)
    python scripts/scann_soar_delete_crash.py plain   # deletes 1,000 faces, prints "ok"

Builds a 3,000-face 128-d index with or without SOAR (λ=1) and deletes faces one at
a time, as ``GalleryIndex.remove`` does (measured 2026-11-22, scann 1.4.2, x86_64).
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> None:
    import scann

    spilled = sys.argv[1:] == ["soar"]
    rng = np.random.default_rng(0)
    faces = rng.standard_normal((3000, 128)).astype(np.float32)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    builder = (
        scann.scann_ops_pybind.builder(faces, 10, "dot_product")
        .tree(
            num_leaves=40,
            num_leaves_to_search=12,
            training_sample_size=3000,
            **({"soar_lambda": 1.0} if spilled else {}),
        )
        .score_ah(2, anisotropic_quantization_threshold=0.2)
        .reorder(100)
    )
    index = builder.build().searcher
    for row in range(0, 2000, 2):  # ScaNN moves its last row into a deleted one's place
        index.delete([row])
    print(f"ok: {index.size()} faces left")


if __name__ == "__main__":
    main()
