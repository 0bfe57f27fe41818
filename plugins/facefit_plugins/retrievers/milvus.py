"""Retriever ``milvus``: a whole gallery in a Milvus collection, on Milvus Lite or a cluster.

Where one machine's memory or index rebuilds no longer fit (tens of millions of
mugshots, many investigators at once), a gallery can live in Milvus instead of a
directory. The same code runs on **Milvus Lite** (a local ``.db`` file, embedded: tests
and small deployments) and on a **Milvus server or cluster** by URL with a token::

    gallery = GalleryIndex.create(encoder, retriever="milvus", uri="milvus:faces.db/mugshots")
    gallery = GalleryIndex.load("milvus://milvus.internal:19530/mugshots")  # MILVUS_TOKEN

One row per face holds its label (the primary key), vector, identity, source, image
sha256, metadata and enrolment time; the collection's ``facefit.gallery`` property holds
what a gallery manifest holds (encoder, index options, the next label). There is no
local index to rebuild: Milvus builds and keeps the index (HNSW, IVF_FLAT, IVF_SQ8 or
FLAT here; DISKANN on a server) and searches it by cosine similarity.

Writes are committed by the ``next_label`` in that property: an add inserts its rows
under new labels, then advances ``next_label``. Rows at or above it are not part of the
gallery: searches filter them out, and the next add deletes them. So an add that fails
halfway (server gone, timeout) adds nothing, even when its clean-up fails too. A remove
is one delete request. See :mod:`facefit.gallery.remote` for how a gallery uses this.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.errors import InputError, PluginError
from facefit.gallery.errors import GalleryError
from facefit.gallery.store import FaceRecord
from facefit.interfaces import DatabaseRetriever, SearchBreadth
from facefit.vectors import check_k, check_labels, normalize_rows
from facefit_plugins.retrievers.milvus_location import MilvusLocation, parse_location

__all__ = ["MilvusRetriever"]

log = logging.getLogger(__name__)

INFO_PROPERTY = "facefit.gallery"
FORMAT = "facefit-gallery-milvus"
FORMAT_VERSION = 1
_BATCH = 4096
"""Rows per insert or query request: a 512-d face with its metadata is a few KB, far
below gRPC's 64 MB message limit; Milvus returns at most 16,384 rows per query."""
_MAX_K = 16_384
"""Milvus's largest top-k, and the most rows one query returns."""
_INDEXES = {
    "FLAT": ((), ()),
    "HNSW": (("M", "ef_construction"), ("ef",)),
    "IVF_FLAT": (("nlist",), ("nprobe",)),
    "IVF_SQ8": (("nlist",), ("nprobe",)),
    "DISKANN": ((), ("ef",)),
}
"""Index types offered: the options that build each and those that tune its search."""
_MILVUS_NAMES = {"ef_construction": "efConstruction", "ef": "ef"}
_TEXT = {"identity": 1024, "source": 4096, "sha256": 64, "added": 40}
"""Text fields and their longest value (Milvus VARCHAR lengths)."""


def _is_rpc_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a gRPC error (pymilvus talks gRPC to Milvus and Milvus Lite)."""
    try:
        import grpc
    except ImportError:
        return False
    return isinstance(exc, grpc.RpcError)


def _pymilvus():
    try:
        import pymilvus
    except ImportError:
        raise PluginError(
            "retriever 'milvus' needs pymilvus (and milvus-lite for local .db files): "
            "pip install 'facefit[milvus]'"
        ) from None
    return pymilvus


class MilvusRetriever(DatabaseRetriever):
    """Cosine search in a Milvus collection that holds the whole gallery (Lite or server).

    ``uri``: a ``milvus:`` URL (``milvus://host:19530/mugshots``,
    ``milvus:faces.db/mugshots``) or a pymilvus URI with ``collection``. ``token``
    (default ``MILVUS_TOKEN``) authenticates with a server; ``timeout`` (seconds)
    bounds every request. ``mode``: ``"create"`` a new collection (an existing one is
    refused), ``"open"`` an existing one, or ``"replace"`` (drop and create).
    ``index_type`` with ``M``/``ef_construction`` (HNSW) or ``nlist`` (IVF) builds the
    index; ``ef`` (HNSW, DISKANN) or ``nprobe`` (IVF) sets the search breadth.
    """

    name = "milvus"

    def __init__(
        self,
        dim: int,
        uri: str | None = None,
        collection: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        mode: str = "create",
        index_type: str = "HNSW",
        M: int = 32,
        ef_construction: int = 128,
        ef: int = 128,
        nlist: int = 1024,
        nprobe: int = 32,
    ) -> None:
        super().__init__(dim)
        if mode not in ("create", "open", "replace"):
            raise PluginError(
                f"retriever 'milvus': mode must be create, open or replace, not {mode!r}"
            )
        index_type = str(index_type).upper()
        if index_type not in _INDEXES:
            raise PluginError(
                f"retriever 'milvus': unknown index_type {index_type!r}; use one of "
                f"{', '.join(_INDEXES)}"
            )
        for key, value in (("M", M), ("ef_construction", ef_construction), ("ef", ef),
                           ("nlist", nlist), ("nprobe", nprobe)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PluginError(
                    f"retriever 'milvus': {key} must be a positive integer, got {value!r}"
                )
        self.index_type, self.M, self.ef_construction = index_type, M, ef_construction
        self.nlist, self.nprobe, self._ef = nlist, nprobe, ef
        self.timeout = float(timeout)
        self._token = token
        self._info: dict[str, Any] = {}
        self._count = 0
        self._orphans_possible = True  # rows past next_label from a write that died
        self.place: MilvusLocation | None = None
        if uri is not None:  # else attached by load(), from the files of a gallery directory
            self._attach(parse_location(uri, collection), mode)

    def _attach(self, place: MilvusLocation, mode: str) -> None:
        self.place = place
        token = self._token if self._token is not None else os.environ.get("MILVUS_TOKEN")
        self._client = self._connect(token)
        exists = self._call("look for the collection", self._client.has_collection, self.collection)
        if exists and mode == "replace":
            self._call("drop the old collection", self._client.drop_collection, self.collection)
            exists = False
        if exists and mode == "create":
            raise GalleryError(
                f"{self.where}: already exists; open it (GalleryIndex.load({self.location!r})) "
                "or replace it (mode='replace', --force)"
            )
        if not exists and mode == "open":
            raise GalleryError(
                f"{self.where}: no such collection; build a gallery there with "
                f"`facefit gallery build --uri {self.location}`"
            )
        if exists:
            self._open()
        else:
            self._create()

    # -- where it is ----------------------------------------------------------------------

    @property
    def collection(self) -> str:
        return self._place.collection

    @property
    def _place(self) -> MilvusLocation:
        if self.place is None:
            raise PluginError(
                "retriever 'milvus' has no collection: give uri='milvus://host:19530/name' "
                "(or milvus:PATH.db/name)"
            )
        return self.place

    @property
    def location(self) -> str:
        """The ``milvus:`` URL of this gallery (no token in it)."""
        return self._place.url

    @property
    def where(self) -> str:
        """Where the data lives, in words (for messages and ``facefit gallery info``)."""
        return self._place.describe()

    @property
    def next_label(self) -> int:
        """Labels below this are committed; rows at or above it are not part of the gallery."""
        return int(self._info.get("next_label", 0))

    @property
    def search_breadth(self) -> SearchBreadth | None:  # type: ignore[override]
        """``ef`` for the index types that have it (HNSW, DISKANN); None otherwise."""
        return SearchBreadth("ef", "count") if "ef" in _INDEXES[self.index_type][1] else None

    @property
    def ef(self) -> int:
        """HNSW (DISKANN) search breadth; higher finds more of the true neighbours, slower."""
        if "ef" not in _INDEXES[self.index_type][1]:
            raise AttributeError(f"a {self.index_type} index has no ef")
        return self._ef

    @ef.setter
    def ef(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PluginError(f"retriever 'milvus': ef must be a positive integer, got {value!r}")
        self._ef = value

    def params(self) -> dict[str, Any]:
        build, search = _INDEXES[self.index_type]
        return {"index_type": self.index_type, **{k: getattr(self, k) for k in build + search}}

    def __len__(self) -> int:
        self._place  # noqa: B018 (an unattached retriever says so)
        return self._count

    # -- the Retriever contract -------------------------------------------------------------

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (no identity: a gallery calls :meth:`add_faces`); a known label is replaced."""
        vectors = normalize_rows(self.check_vectors(vectors), "vectors to add")
        labels = check_labels(labels, len(vectors))
        old = labels[labels < self.next_label]
        replaced = len(self._existing(old)) if len(old) else 0
        rows = [_row(int(x), v, None) for x, v in zip(labels.tolist(), vectors)]
        self._write(labels, rows, upsert=bool(len(old)))
        self._count += len(labels) - replaced

    def add_faces(
        self, labels: np.ndarray, vectors: np.ndarray, records: Sequence[FaceRecord]
    ) -> None:
        """Add new faces (labels at or past :attr:`next_label`) with who they are."""
        vectors = normalize_rows(self.check_vectors(vectors), "vectors to add")
        labels = check_labels(labels, len(vectors))
        if len(labels) and int(labels.min()) < self.next_label:
            raise GalleryError(f"{self.where}: labels below {self.next_label} are taken")
        rows = [_row(int(x), v, r) for x, v, r in zip(labels.tolist(), vectors, records)]
        self._write(labels, rows, upsert=False)
        self._count += len(labels)

    def remove(self, labels: np.ndarray) -> None:
        labels = check_labels(labels)
        found = self._existing(labels)
        missing = sorted(set(labels.tolist()) - found)
        if missing:
            raise InputError(f"cannot remove labels not in the index: {missing[:10]}")
        try:  # one request: Milvus applies it whole or not at all
            self._call("remove faces", self._client.delete, self.collection, ids=labels.tolist())
        except GalleryError as exc:
            gone = len(labels) - len(self._existing_quietly(labels))
            if gone:  # a timeout after Milvus had applied it
                self._count -= gone
                raise GalleryError(
                    f"{exc}; {gone} of the {len(labels)} faces were removed all the same: "
                    "open the gallery again to see it as it is"
                ) from None
            raise
        self._count -= len(labels)

    def get_vectors(self, labels: np.ndarray) -> np.ndarray:
        labels = check_labels(labels)
        found: dict[int, Any] = {}
        for start in range(0, len(labels), _BATCH):
            chunk = [x for x in labels[start : start + _BATCH].tolist() if x < self.next_label]
            if not chunk:
                continue
            rows = self._call(
                "read vectors", self._client.get, self.collection, ids=chunk,
                output_fields=["vector"],
            )  # fmt: skip
            found.update((int(r["label"]), r["vector"]) for r in rows)
        missing = [x for x in labels.tolist() if x not in found]
        if missing:
            raise InputError(f"label {missing[0]} is not in the index")
        return np.asarray([found[x] for x in labels.tolist()], dtype=np.float32).reshape(
            -1, self.dim
        )

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = normalize_rows(self.check_vectors(queries, "queries"), "queries")
        k = check_k(k, len(self))
        if k > _MAX_K:
            raise InputError(f"k={k}: Milvus returns at most {_MAX_K} results per query")
        scores, labels, short = self._search(queries, k, self._search_params(k))
        if short:  # an approximate search found fewer than k: look wider once
            wider = {key: max(4 * value, 4 * k) for key, value in self._search_params(k).items()}
            log.info("milvus found fewer than k=%d faces; searching again with %s", k, wider)
            scores, labels, short = self._search(queries, k, wider)
            if short:
                raise InputError(f"{self.where}: cannot return k={k} faces; ask for fewer")
        return scores, labels

    def save(self, directory: Path, stem: str) -> list[str]:
        """Flush, and write ``stem.milvus.json``: where the collection is (no token).

        The vectors and records stay in Milvus; a gallery directory saved this way is a
        bookmark with a copy of the metadata (to copy the vectors: `facefit gallery migrate`).
        """
        self._call("flush", self._client.flush, self.collection)
        name = f"{stem}.milvus.json"
        pointer = {"location": self.location, "next_label": self.next_label, "faces": len(self)}
        (Path(directory) / name).write_text(json.dumps(pointer, indent=2) + "\n", "utf-8")
        return [name]

    def load(self, directory: Path, stem: str) -> None:
        """Open the collection a gallery directory's ``stem.milvus.json`` names."""
        path = Path(directory) / f"{stem}.milvus.json"
        try:
            pointer = json.loads(path.read_text("utf-8"))
            place, limit = parse_location(pointer["location"]), int(pointer["next_label"])
        except (OSError, ValueError, KeyError, TypeError, InputError) as exc:
            raise ValueError(f"{path}: not a readable milvus location ({exc})") from None
        self._attach(place, "open")
        # faces added to the collection after this directory was saved are not in its
        # metadata: keep them out of sight (and refuse writes: the collection moved on)
        self._info["next_label"] = min(self.next_label, limit)
        self._count = self._count_faces()

    # -- a gallery in the collection (see facefit.gallery.remote) ---------------------------

    @classmethod
    def stored_gallery(cls, uri: str, collection: str | None = None, token: str | None = None,
                       timeout: float = 30.0, **_: Any) -> dict[str, Any] | None:  # fmt: skip
        """The gallery description stored at ``uri``, or None when there is no collection."""
        place = parse_location(uri, collection)
        probe = cls.__new__(cls)
        probe.place, probe.timeout = place, float(timeout)
        client = probe._connect(token if token is not None else os.environ.get("MILVUS_TOKEN"))
        probe._client = client
        if not probe._call("look for the collection", client.has_collection, place.collection):
            return None
        return probe._read_info()

    def start_gallery(self, encoder: dict[str, Any]) -> None:
        """Record the face encoder of a new gallery (its vectors' meaning) in the collection."""
        if self._info.get("encoder") not in (None, encoder):
            raise GalleryError(f"{self.where}: already holds a gallery of another encoder")
        self._store_info(encoder=encoder)

    def face_records(self) -> Iterator[FaceRecord]:
        """Every face of the gallery, without vectors, by label."""
        fields = ["label", "identity", "source", "sha256", "metadata", "added"]
        # labels are dense: page by range, in Milvus's largest pages (on Milvus Lite a
        # page of 16,384 cost a third less per face than one of 4,096, measured here)
        for start in range(0, self.next_label, _MAX_K):
            rows = self._call(
                "read the faces", self._client.query, self.collection,
                filter=f"label >= {start} and label < {min(start + _MAX_K, self.next_label)}",
                output_fields=fields,
            )  # fmt: skip
            for r in sorted(rows, key=lambda r: int(r["label"])):
                yield FaceRecord(
                    int(r["label"]), r["identity"], r["source"] or None,
                    r["sha256"] or None, dict(r["metadata"] or {}), r["added"],
                )  # fmt: skip

    def commit(self, **fields: Any) -> dict[str, Any]:
        """Store the search options and ``fields`` in the gallery description, count one
        more generation (save), and flush."""
        self._call("flush", self._client.flush, self.collection)
        generation = int(self._info.get("generation", 0)) + 1
        return self._store_info(retriever_params=self.params(), generation=generation, **fields)

    def drop(self) -> None:
        """Delete the collection and everything in it."""
        self._call("drop the collection", self._client.drop_collection, self.collection)
        self._count, self._info = 0, {}

    # -- Milvus --------------------------------------------------------------------------------

    def _connect(self, token: str | None) -> Any:
        pymilvus = _pymilvus()
        if self._place.is_lite:
            try:
                import milvus_lite  # noqa: F401
            except ImportError:
                raise PluginError(
                    f"{self.where}: Milvus Lite files need milvus-lite: pip install "
                    "'facefit[milvus]' (or use a server: milvus://host:19530/collection)"
                ) from None
        try:
            return pymilvus.MilvusClient(
                uri=self._place.uri, token=token or "", timeout=self.timeout
            )
        except pymilvus.MilvusException as exc:
            if self._place.is_lite:
                raise GalleryError(
                    f"{self.where}: cannot open it ({exc.message}); a Milvus Lite file is used "
                    "by one process at a time: close the other one, or share the gallery "
                    "through a Milvus server (milvus://HOST:19530/COLLECTION)"
                ) from None
            raise GalleryError(
                f"{self.where}: cannot connect within {self.timeout:g} s ({exc.message}); "
                "check that Milvus is running and reachable at that address, and the token "
                "(MILVUS_TOKEN)"
            ) from None

    def _call(
        self, what: str, fn: Callable[..., Any], *args: Any, untimed: bool = False, **kwargs: Any
    ) -> Any:
        """``fn(*args, **kwargs)`` with this retriever's timeout; a Milvus error names ``what``."""
        pymilvus = _pymilvus()
        if not untimed:
            kwargs.setdefault("timeout", self.timeout)
        try:
            return fn(*args, **kwargs)
        except pymilvus.MilvusException as exc:
            raise GalleryError(
                f"{self.where}: could not {what} ({exc.message}); check that Milvus is "
                "reachable, then try again"
            ) from None
        except Exception as exc:
            if not _is_rpc_error(exc):
                raise
            # some timeouts reach the caller as gRPC's own error, not a MilvusException
            detail = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
            raise GalleryError(
                f"{self.where}: could not {what} ({detail}); Milvus did not answer in "
                f"{self.timeout:g} s: check that it is reachable and not overloaded, or "
                "raise the retriever's timeout, then try again"
            ) from None

    def _create(self) -> None:
        pymilvus = _pymilvus()
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("label", pymilvus.DataType.INT64, is_primary=True)
        schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=self.dim)
        for field, length in _TEXT.items():
            schema.add_field(field, pymilvus.DataType.VARCHAR, max_length=length)
        schema.add_field("metadata", pymilvus.DataType.JSON)
        index = self._client.prepare_index_params()
        build = {_MILVUS_NAMES.get(k, k): getattr(self, k) for k in _INDEXES[self.index_type][0]}
        index.add_index("vector", index_type=self.index_type, metric_type="COSINE", params=build)
        now = _now()
        self._info = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "dim": self.dim,
            "encoder": None, "next_label": 0, "generation": 0, "created": now, "saved": now,
            "retriever_params": self.params(),
        }  # fmt: skip
        self._call(
            f"create the collection with a {self.index_type} index", self._client.create_collection,
            self.collection, schema=schema, index_params=index, consistency_level="Strong",
            properties={INFO_PROPERTY: json.dumps(self._info, sort_keys=True)},
        )  # fmt: skip
        self._count, self._orphans_possible = 0, False

    def _open(self) -> None:
        info = self._read_info()
        if info is None or info.get("dim") != self.dim:
            stored = None if info is None else info.get("dim")
            raise GalleryError(
                f"{self.where}: holds {stored}-d vectors, this retriever was made for "
                f"{self.dim}-d (another encoder); open it with the gallery's own encoder"
            )
        self._info = info
        built = info.get("retriever_params", {})  # the index is as it was built
        self.index_type = built.get("index_type", self.index_type)
        for key in ("M", "ef_construction", "nlist"):
            setattr(self, key, built.get(key, getattr(self, key)))
        self._call("load the collection", self._client.load_collection, self.collection)
        self._count = self._count_faces()

    def _count_faces(self) -> int:
        rows = self._call(
            "count the faces", self._client.query, self.collection,
            filter=f"label < {self.next_label}", output_fields=["count(*)"],
        )  # fmt: skip
        return int(rows[0]["count(*)"])

    def _read_info(self) -> dict[str, Any] | None:
        described = self._call("describe the collection", self._client.describe_collection,
                               self.collection)  # fmt: skip
        text = (described.get("properties") or {}).get(INFO_PROPERTY)
        if text is None:
            raise GalleryError(
                f"{self.where}: this collection was not made by facefit; choose another name"
            )
        try:
            info = json.loads(text)
        except json.JSONDecodeError:
            info = None
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise GalleryError(f"{self.where}: its {INFO_PROPERTY} property is damaged")
        if int(info.get("format_version", 0)) > FORMAT_VERSION:
            raise GalleryError(f"{self.where}: written by a newer facefit; upgrade facefit")
        return info

    def _store_info(self, **fields: Any) -> dict[str, Any]:
        info = {**self._info, **fields}
        self._call(
            "store the gallery description", self._client.alter_collection_properties,
            self.collection, properties={INFO_PROPERTY: json.dumps(info, sort_keys=True)},
        )  # fmt: skip
        self._info = info
        return info

    def _existing(self, labels: np.ndarray) -> set[int]:
        found: set[int] = set()
        for start in range(0, len(labels), _BATCH):
            chunk = [x for x in labels[start : start + _BATCH].tolist() if x < self.next_label]
            if not chunk:
                continue
            rows = self._call("look up faces", self._client.get, self.collection, ids=chunk,
                              output_fields=["label"])  # fmt: skip
            found.update(int(r["label"]) for r in rows)
        return found

    def _existing_quietly(self, labels: np.ndarray) -> set[int]:
        """:meth:`_existing`, or all of ``labels`` when Milvus cannot be asked."""
        try:
            return self._existing(labels)
        except GalleryError:
            return set(labels.tolist())

    def _write(self, labels: np.ndarray, rows: list[dict[str, Any]], *, upsert: bool) -> None:
        """Write rows, then commit by advancing ``next_label``; a failure leaves nothing new."""
        if not len(labels):
            return
        committed = self.next_label
        stored = self._read_info() or {}
        if stored.get("next_label") != committed:
            raise GalleryError(
                f"{self.where}: another process changed this gallery since it was opened "
                f"(next label {stored.get('next_label')}, expected {committed}); open it again "
                "and repeat the change"
            )
        if self._orphans_possible:  # rows of a write that died before its commit
            self._call("clear an unfinished write", self._client.delete, self.collection,
                       filter=f"label >= {committed}")  # fmt: skip
            self._orphans_possible = False
        send = self._client.upsert if upsert else self._client.insert
        try:
            for start in range(0, len(rows), _BATCH):
                self._call("write faces", send, self.collection, rows[start : start + _BATCH])
            self._store_info(next_label=max(committed, int(labels.max()) + 1))
        except BaseException:
            self._orphans_possible = True
            try:
                self._client.delete(self.collection, filter=f"label >= {committed}",
                                    timeout=self.timeout)  # fmt: skip
                self._orphans_possible = False
            except Exception:  # unreachable: readers ignore the rows, the next add clears them
                log.warning("%s: could not clear an unfinished write yet", self.where)
            raise

    def _search_params(self, k: int) -> dict[str, int]:
        # Milvus servers refuse an HNSW ef below k (faiss and hnswlib widen it themselves)
        names = _INDEXES[self.index_type][1]
        return {
            _MILVUS_NAMES.get(n, n): max(getattr(self, n), k if n == "ef" else 1) for n in names
        }

    def _search(
        self, queries: np.ndarray, k: int, params: dict[str, int]
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        result = self._call(
            "search", self._client.search, self.collection, data=list(queries), limit=k,
            filter=f"label < {self.next_label}", output_fields=[],
            search_params={"metric_type": "COSINE", "params": params},
        )  # fmt: skip
        scores = np.zeros((len(queries), k), np.float32)
        labels = np.zeros((len(queries), k), np.int64)
        short = False
        for q, hits in enumerate(result):
            short |= len(hits) < k
            for j, hit in enumerate(hits[:k]):
                scores[q, j], labels[q, j] = hit["distance"], hit["label"]
        return scores, labels, short


def _row(label: int, vector: np.ndarray, record: FaceRecord | None) -> dict[str, Any]:
    row: dict[str, Any] = {"label": label, "vector": vector, "metadata": {}}
    row.update(identity="", source="", sha256="", added="")
    if record is not None:
        row.update(identity=record.identity, source=record.source or "",
                   sha256=record.sha256 or "", metadata=record.metadata, added=record.added)  # fmt: skip
    for field, length in _TEXT.items():
        if len(row[field].encode("utf-8")) > length:
            raise InputError(f"face {label}: {field} is longer than Milvus keeps ({length} bytes)")
    return row


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@hookimpl
def register_retrievers(register) -> None:
    register(MilvusRetriever)  # pymilvus itself loads on first use
