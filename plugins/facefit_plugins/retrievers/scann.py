"""Retriever ``scann``: a partitioned, quantized index (Google's ScaNN) for large galleries.

ScaNN splits the gallery into k-means leaves (about 2·√n), scores the faces of the
leaves nearest a query with anisotropic 4-bit codes (one per ``dims_per_block``
dimensions), and re-scores the best ``reorder`` of them exactly. The share of leaves scanned,
``leaves_to_search``, trades speed for recall.

ScaNN's SOAR spilling (each face in a second leaf too) is not used: ScaNN 1.4.2
crashes when a face is deleted from a spilled index, and a gallery must be able to
remove faces; at a million faces it found no more in the same time either
(``benchmarks/results/gallery_ann_frontier.md``).

How it compares with hnswlib in speed and recall, measured: docs/gallery.md and
``benchmarks/results/gallery_scann.md``.

The ANN index is trained once the gallery reaches ``train_at`` faces (below that,
search is exact over the same stored vectors), and trained again from scratch each
time the gallery doubles; in between, faces are added to and removed from the
trained leaves. ScaNN's row ``i`` is always this retriever's row ``i``: both move the
last row into a removed one's place.

ScaNN has wheels for Linux (x86_64, aarch64) only; facefit installs it there. On
other systems this retriever says so, and ``auto`` galleries use hnswlib.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.errors import InputError, PluginError
from facefit.files import TEMP_MARK
from facefit.interfaces import SearchBreadth
from facefit.vectors import check_k, check_labels, normalize_rows
from facefit_plugins.retrievers import ExactRetriever

__all__ = ["ScannRetriever"]

log = logging.getLogger(__name__)

_ASSET_NAMES = frozenset(
    {
        "ah_codebook.pb",
        "serialized_partitioner.pb",
        "datapoint_to_token.npy",
        "hashed_dataset.npy",
        "hashed_dataset_soar.npy",
        "dataset.npy",
        "int8_dataset.npy",
        "int8_multipliers.npy",
        "dp_norm.npy",
        "scann_config.pb",
    }
)
"""Files ScaNN's ``serialize`` writes (all but its assets list); nothing else is loaded."""

_MIN_TRAIN = 100
"""Fewest faces the index is trained on (ScaNN's 4-bit codes need 16 per block)."""


def _scann():
    try:
        from scann.scann_ops.py import scann_ops_pybind
    except ImportError:
        raise PluginError(
            "retriever 'scann' needs the ScaNN package, which has wheels for Linux only: "
            "pip install scann, or use retriever 'hnswlib'"
        ) from None
    return scann_ops_pybind


_ABSL_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")
"""ScaNN's C++ log lines (absl): ``I0000 00:00:… file.cc:58] …``."""


@contextlib.contextmanager
def _native_log_to(logger: logging.Logger):
    """Route ScaNN's C++ log lines on stderr (absl INFO lines) to ``logger`` at DEBUG.

    Anything else written to stderr meanwhile (by another thread) is written out after.
    """
    try:
        fd = os.dup(2)
    except OSError:  # no stderr to redirect
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)
            sink.seek(0)
            others = []
            for line in sink.read().decode(errors="replace").splitlines():
                if _ABSL_LINE.match(line):
                    logger.debug("scann: %s", line)
                elif line.strip():
                    others.append(line)  # someone else's (another thread's): pass it on
            if others:
                os.write(2, ("\n".join(others) + "\n").encode())


class ScannRetriever(ExactRetriever):
    """Approximate cosine search with ScaNN: k-means leaves, SOAR, 4-bit codes, exact re-scoring.

    Options (all stored with a saved gallery):

    - ``leaves_to_search``: share of the leaves scanned per query (0–1]; more finds
      more of the exact top-k, slower. Smaller galleries need a larger share for the
      same recall.
    - ``recall_target``: when set (the default, 0.99), each training ends by setting
      ``leaves_to_search`` to the smallest share finding this much of the exact
      top-10 of 200 stored faces (:func:`facefit.gallery.tuning.tune_leaves`).
      ``None`` keeps ``leaves_to_search`` as given.
    - ``reorder``: candidates re-scored exactly per query (at least ``k`` is used).
    - ``dims_per_block``: dimensions per 4-bit code (2: 64 codes for a 128-d face).
    - ``train_at``: the gallery size at which the index is first trained (at least
      100: the codes need some faces to learn from); below it every query is
      compared with every face.
    - ``num_threads``: threads for training and for batches of queries (0: all cores).
    """

    name = "scann"
    search_breadth = SearchBreadth("leaves_to_search", "share")

    def __init__(
        self,
        dim: int,
        leaves_to_search: float = 0.55,
        recall_target: float | None = 0.99,
        reorder: int = 1000,
        dims_per_block: int = 2,
        train_at: int = 10_000,
        num_threads: int = 0,
        capacity: int = 1024,
    ) -> None:
        super().__init__(dim, device="cpu", capacity=capacity)
        _scann()
        if not isinstance(leaves_to_search, (int, float)) or not 0 < leaves_to_search <= 1:
            raise PluginError(
                f"retriever 'scann': leaves_to_search is a share of the leaves in (0, 1], "
                f"got {leaves_to_search!r}"
            )
        for key, value, low in (
            ("reorder", reorder, 1),
            ("dims_per_block", dims_per_block, 1),
            ("train_at", train_at, _MIN_TRAIN),
            ("num_threads", num_threads, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PluginError(
                    f"retriever 'scann': {key} must be an integer ≥ {low}, got {value!r}"
                )
        if recall_target is not None and (
            not isinstance(recall_target, (int, float)) or not 0 < recall_target <= 1
        ):
            raise PluginError(
                f"retriever 'scann': recall_target is a share in (0, 1] or None, "
                f"got {recall_target!r}"
            )
        self.leaves_to_search = float(leaves_to_search)
        self.recall_target = None if recall_target is None else float(recall_target)
        self.reorder = reorder
        self.dims_per_block = dims_per_block
        self.train_at = train_at
        self.num_threads = num_threads if num_threads > 0 else (os.cpu_count() or 1)
        self._searcher: Any = None  # the ScaNN index, None until train_at faces
        self._trained_on = 0
        self._retry_at = 0  # after a failed training: the size to try again at
        self._num_leaves = 0

    def params(self) -> dict[str, Any]:
        return {
            "leaves_to_search": self.leaves_to_search,
            "recall_target": self.recall_target,
            "reorder": self.reorder,
            "dims_per_block": self.dims_per_block,
            "train_at": self.train_at,
        }

    @property
    def trained(self) -> bool:
        """Whether searches go through the ScaNN index (else: exact)."""
        return self._searcher is not None

    @property
    def num_leaves(self) -> int:
        """Leaves of the trained partition (0 before training)."""
        return self._num_leaves

    # -- writing -------------------------------------------------------------------------------

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; a label already present gets its vector replaced."""
        vectors = normalize_rows(self.check_vectors(vectors), "vectors to add")
        labels = check_labels(labels, len(vectors))
        rows = [self._row.get(label) for label in labels.tolist()]
        super().add(labels, vectors)
        if self._searcher is None:
            action = "train" if self._n >= max(self.train_at, self._retry_at) else None
        else:
            action = "train" if self._n > 2 * self._trained_on else "update"
        try:
            if action == "train":
                self.train()
            elif action == "update":
                self._searcher.upsert(rows, vectors, 256)
        except RuntimeError as exc:  # ScaNN's C++ refused: stay correct, search exactly
            self._fall_back("training" if action == "train" else "updating the index", exc)

    def _fall_back(self, what: str, exc: Exception) -> None:
        """Drop the ScaNN index after it failed: every face is kept and searched exactly."""
        log.warning(
            "retriever 'scann': %s failed with %d faces (%s); searching exactly until "
            "the gallery doubles",
            what,
            self._n,
            exc,
        )
        self._searcher = None
        self._trained_on = self._num_leaves = 0
        self._retry_at = 2 * self._n

    def remove(self, labels: np.ndarray) -> None:
        labels = check_labels(labels)
        missing = [int(x) for x in labels if int(x) not in self._row]
        if missing:
            raise InputError(f"cannot remove labels not in the index: {missing[:10]}")
        for label in labels.tolist():
            row = self._row[label]
            super().remove(np.array([label]))  # moves the last row into ``row``
            if self._searcher is not None:
                try:
                    self._searcher.delete([row])  # ScaNN moves its last row the same way
                except RuntimeError as exc:  # stay correct: search exactly
                    self._fall_back("removing a face", exc)
        if self._searcher is not None and self._n < self.train_at:
            self._searcher = None  # small again: exact search is cheaper than the index
            self._trained_on = self._num_leaves = 0

    def train(self) -> None:
        """(Re)train the index on every stored face: its leaves and codes (then tune, see
        ``recall_target``)."""
        if self._n < _MIN_TRAIN:
            raise InputError(
                f"retriever 'scann' needs at least {_MIN_TRAIN} faces to train, has {self._n}"
            )
        scann = _scann()
        vectors = self._vectors[: self._n]
        n = self._n
        # ≈2·√n leaves, at least ~50 faces in each
        leaves = max(2, min(round(2 * math.sqrt(n)), n // 50))
        builder = (
            scann.builder(vectors, 10, "dot_product")
            .tree(
                num_leaves=leaves,
                num_leaves_to_search=self._leaves_for(leaves),
                training_sample_size=min(n, 250_000),
                spherical=True,  # unit-length centres: leaves ranked by cosine
            )
            .score_ah(self.dims_per_block, anisotropic_quantization_threshold=0.2)
            .reorder(self.reorder)
        )
        builder.set_n_training_threads(self.num_threads)
        with _native_log_to(log):
            searcher = builder.build().searcher
        searcher.set_num_threads(self.num_threads)
        self._searcher, self._trained_on, self._num_leaves = searcher, n, leaves
        log.info("scann: trained on %d faces, %d leaves", n, leaves)
        if self.recall_target is not None:
            from facefit.gallery.tuning import tune_leaves

            tuning = tune_leaves(self, self._labels[: self._n].copy(), recall=self.recall_target)
            log.info(
                "scann: leaves_to_search=%s finds %.4f of the exact top-10 (target %s)",
                tuning.value,
                tuning.recall,
                self.recall_target,
            )

    def _leaves_for(self, leaves: int) -> int:
        return max(1, min(leaves, math.ceil(self.leaves_to_search * leaves)))

    # -- reading -------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._searcher is None:
            return super().search(queries, k)
        queries = normalize_rows(self.check_vectors(queries, "queries"), "queries")
        k = check_k(k, self._n)
        leaves = self._leaves_for(self._num_leaves)
        reorder = max(self.reorder, k)
        if len(queries) == 1:
            rows, scores = self._searcher.search(queries[0], k, reorder, leaves)
            rows, scores = np.asarray(rows)[None], np.asarray(scores)[None]
        else:
            parallel = self.num_threads > 1
            rows, scores = self._searcher.search_batched(queries, k, reorder, leaves, parallel, 256)
        rows = np.asarray(rows, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        short = ~np.isfinite(scores).all(axis=1) | (rows >= self._n).any(axis=1)
        if short.any():
            # the scanned leaves held fewer than k faces: answer those queries exactly
            exact_scores, exact_labels = super().search(queries[short], k)
            labels = self._labels[np.minimum(rows, self._n - 1)]
            scores[short], labels[short] = exact_scores, exact_labels
            return scores, labels
        return scores, self._labels[rows]

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory: Path, stem: str) -> list[str]:
        if self._searcher is None:
            return super().save(directory, stem)
        directory = Path(directory)
        names = [f"{stem}.labels.npy"]
        np.save(directory / names[0], self._labels[: self._n], allow_pickle=False)
        # a scratch directory the gallery's next save sweeps if this process dies in it
        with tempfile.TemporaryDirectory(dir=directory, prefix=f".{stem}.scann{TEMP_MARK}") as tmp:
            with _native_log_to(log):
                self._searcher.serialize(tmp, True)
            for entry in sorted(os.listdir(tmp)):
                name = f"{stem}.scann.{entry}"
                os.replace(os.path.join(tmp, entry), directory / name)
                names.append(name)
        return names

    def load(self, directory: Path, stem: str) -> None:
        directory = Path(directory)
        assets = directory / f"{stem}.scann.scann_assets.pbtxt"
        if not assets.exists():
            self._searcher = None
            self._trained_on = self._num_leaves = 0
            return super().load(directory, stem)
        text = assets.read_text()
        paths = re.findall(r'asset_path:\s*"([^"]*)"', text)
        unknown = [p for p in paths if p not in _ASSET_NAMES]
        if unknown:
            raise InputError(f"{assets}: names files this version does not read: {unknown}")
        labels = np.load(directory / f"{stem}.labels.npy", allow_pickle=False)
        vectors = np.load(directory / f"{stem}.scann.dataset.npy", allow_pickle=False)
        self._empty_for_loading(labels, vectors, f"{directory}/{stem}")
        ExactRetriever.add(self, labels, vectors)  # not self.add: that would train
        scann = _scann()
        try:
            with tempfile.TemporaryDirectory(prefix="facefit-scann-") as tmp:
                for name in (*paths, "scann_config.pb"):
                    source = directory / f"{stem}.scann.{name}"
                    if source.exists():
                        os.symlink(source.resolve(), os.path.join(tmp, name))
                with _native_log_to(log):
                    searcher = scann.scann_pybind.ScannNumpy(tmp, text)
        except RuntimeError as exc:  # e.g. written by another ScaNN version
            log.warning(
                "retriever 'scann': cannot read the saved index in %s (%s); training it "
                "again from the %d stored faces",
                directory,
                exc,
                self._n,
            )
            self._searcher = None
            if self._n >= self.train_at:
                self.train()
            return
        searcher.set_num_threads(self.num_threads)
        self._searcher, self._trained_on = searcher, len(labels)
        config = searcher.config()
        found = re.search(r"num_children:\s*(\d+)", config if isinstance(config, str) else "")
        self._num_leaves = int(found.group(1)) if found else max(2, round(2 * math.sqrt(self._n)))


@hookimpl
def register_retrievers(register) -> None:
    register(ScannRetriever)  # scann itself loads on first use
