"""GalleryIndex: a persistent face gallery searched by identity.

    from facefit.gallery import GalleryIndex

    gallery = GalleryIndex.create(encoder)                  # sface, exact or hnswlib by size
    gallery.add(vectors, ["A. Smith", "A. Smith", "B. Jones"], sources=paths, sha256s=digests)
    gallery.save("mugshots.gallery")

    gallery = GalleryIndex.load("mugshots.gallery", encoder=encoder)   # refuses another encoder
    for hit in gallery.search(probe_vector, k=10):                     # identities, max-fused
        print(hit.rank, hit.identity, hit.score, [f.source for f in hit.faces])

Vectors live in a :class:`~facefit.interfaces.Retriever`, who they are in a
:class:`~facefit.gallery.store.MetadataStore`; labels are assigned here and never
reused. Every method is thread-safe: searches run side by side, adds and removes
one at a time (a readers–writer lock), and a save lets searches go on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.errors import UnknownPluginError
from facefit.gallery import persist, remote
from facefit.gallery.atomic import directory_lock
from facefit.gallery.checks import (
    check_encoder,
    check_k,
    checked_names,
    checked_sha256s,
    checked_vectors,
    one_query,
    per_face,
)
from facefit.gallery.choice import (
    choose_retriever,
    create_retriever,
    missing_retriever,
    retriever_package,
)
from facefit.gallery.errors import (
    CorruptGalleryError,
    GalleryError,
)
from facefit.gallery.hits import FaceHit, IdentityHit, first_identities
from facefit.gallery.manifest import EncoderInfo, FileRecord, Manifest
from facefit.gallery.rwlock import ReadWriteLock
from facefit.gallery.store import FaceRecord, MetadataStore
from facefit.gallery.tuning import Tuning, tune
from facefit.interfaces import Retriever

if TYPE_CHECKING:
    from facefit.registry import Registry

log = logging.getLogger(__name__)


class GalleryIndex:
    """Faces with identities and provenance, searchable by identity; saved as a directory.

    Build one with :meth:`create` or :meth:`load`, not the constructor.
    """

    def __init__(
        self,
        encoder: EncoderInfo,
        retriever: Retriever,
        store: MetadataStore,
        *,
        auto_retriever: bool,
        registry: Registry | None = None,
        manifest: Manifest | None = None,
        path: Path | None = None,
    ) -> None:
        self._encoder = encoder
        self._retriever = retriever
        self._store = store
        self._auto = auto_retriever
        self._registry = registry
        self._manifest = manifest
        self._path = path
        self._next_label = manifest.next_label if manifest else 0
        self._lock = ReadWriteLock()
        self._save_mutex = threading.Lock()
        # label -> identity id (-1: no such face), and identity id -> name / face count;
        # kept in memory so a search never waits on SQLite to rank identities
        self._identity_of = np.full(max(16, self._next_label), -1, dtype=np.int64)
        self._names = store.identity_names()
        pairs = np.array(list(store.label_identities()), dtype=np.int64).reshape(-1, 2)
        self._identity_of[pairs[:, 0]] = pairs[:, 1]
        ids, counts = np.unique(pairs[:, 1], return_counts=True)
        self._face_counts: dict[int, int] = dict(zip(ids.tolist(), counts.tolist()))

    # -- making one --------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        encoder: Any,
        *,
        retriever: str | Retriever = "auto",
        expected_faces: int = 0,
        registry: Registry | None = None,
        **options: Any,
    ) -> GalleryIndex:
        """An empty in-memory gallery for embeddings of ``encoder``.

        ``encoder`` is a :class:`~facefit.interfaces.FaceEncoder` (or an
        :class:`EncoderInfo`). ``retriever`` is a plugin name, a ready
        :class:`Retriever`, or ``"auto"``: :func:`choose_retriever` by
        ``expected_faces``, switching to ``scann`` (``hnswlib`` without ScaNN) as
        the gallery grows past the exact search's limit. ``options`` go to the retriever plugin.
        """
        info = EncoderInfo.of(encoder)
        auto = isinstance(retriever, str) and retriever == "auto"
        if isinstance(retriever, Retriever):
            if retriever.dim != info.dim:
                raise GalleryError(
                    f"retriever {retriever.name!r} has dimension {retriever.dim}, "
                    f"the encoder {info} gives {info.dim}"
                )
            if len(retriever):
                raise GalleryError("pass an empty retriever: faces are added through the gallery")
        else:
            name = choose_retriever(expected_faces, info.dim) if auto else retriever
            retriever = create_retriever(name, info.dim, registry, **options)
        if remote.keeps_records(retriever):
            remote.start(retriever, info)
        return cls(info, retriever, MetadataStore.new(), auto_retriever=auto, registry=registry)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        encoder: Any = None,
        registry: Registry | None = None,
        verify: bool = True,
        **options: Any,
    ) -> GalleryIndex:
        """Open a saved gallery, checking every file against the manifest.

        With ``encoder`` given, a gallery built with another encoder (name, version or
        dimension) is refused with :class:`EncoderMismatchError`. ``verify=False``
        checks sizes only (faster on huge galleries; a flipped byte then goes unseen).
        ``path`` may be a database URL (``milvus://host:19530/mugshots``; see
        :mod:`facefit.gallery.remote`); ``options`` then go to its retriever (``token``,
        ``timeout``, ``ef``).
        """
        if remote.database_scheme(path):
            return remote.load(cls, path, encoder=encoder, registry=registry, options=options)
        if options:
            raise GalleryError(f"options {sorted(options)} apply to a gallery in a database only")
        path = Path(path)
        if not path.is_dir():
            raise GalleryError(
                f"{path}: no gallery here (expected a directory made by `facefit gallery build`)"
            )
        with directory_lock(path, exclusive=False):
            manifest = persist.read_manifest(path)
            if manifest is None:
                raise GalleryError(persist.describe_missing_manifest(path))
            if encoder is not None:
                check_encoder(manifest.encoder, EncoderInfo.of(encoder), path)
            persist.verify_files(path, manifest, checksums=verify)
            index_stem, metadata_stem = persist.stems(manifest.generation)
            try:
                retriever = create_retriever(
                    manifest.retriever, manifest.encoder.dim, registry, **manifest.retriever_params
                )
            except UnknownPluginError:
                raise GalleryError(
                    missing_retriever(manifest.retriever, manifest.retriever_package, str(path))
                ) from None
            try:
                retriever.load(path, index_stem)
            except (OSError, RuntimeError, ValueError) as exc:
                raise CorruptGalleryError(f"{path}: cannot read the index ({exc})") from None
            store = MetadataStore.load(path / f"{metadata_stem}.sqlite")
        faces, identities = store.counts()
        if not faces == len(retriever) == manifest.faces or identities != manifest.identities:
            raise CorruptGalleryError(
                f"{path}: the index holds {len(retriever)} faces and the metadata {faces} "
                f"({identities} identities) but the manifest says {manifest.faces} "
                f"({manifest.identities}); rebuild the gallery"
            )
        return cls(
            manifest.encoder,
            retriever,
            store,
            auto_retriever=manifest.auto_retriever,
            registry=registry,
            manifest=manifest,
            path=path,
        )

    @classmethod
    def open_or_build(
        cls,
        path: str | Path,
        images: str | Path,
        *,
        identities: str | Path | None = None,
        embedder: Any = None,
        registry: Registry | None = None,
        retriever: str = "auto",
        progress: bool = False,
        **options: Any,
    ) -> GalleryIndex:
        """Open the gallery at ``path``, or build it from ``images`` and save it there.

        See :func:`facefit.gallery.build.open_or_build` for the arguments.
        """
        from facefit.gallery.build import open_or_build

        return open_or_build(
            path,
            images,
            identities=identities,
            embedder=embedder,
            registry=registry,
            retriever=retriever,
            progress=progress,
            **options,
        )

    # -- what it is ---------------------------------------------------------------------------

    @property
    def encoder(self) -> EncoderInfo:
        """The face encoder this gallery's vectors come from."""
        return self._encoder

    @property
    def dim(self) -> int:
        return self._encoder.dim

    @property
    def path(self) -> Path | None:
        """Where it was last loaded from or saved to (None: never saved)."""
        return self._path

    @property
    def _where(self) -> str:
        if remote.keeps_records(self._retriever):
            return self._retriever.location
        return str(self._path) if self._path else "(in memory)"

    @property
    def retriever(self) -> Retriever:
        """The retriever holding the vectors (e.g. to change hnswlib's ``ef``)."""
        return self._retriever

    def __len__(self) -> int:
        return len(self._retriever)

    @property
    def num_identities(self) -> int:
        return len(self._face_counts)

    def identities(self) -> list[str]:
        """Names of the identities with at least one face, sorted."""
        with self._lock.read():
            return sorted(self._names[i] for i in self._face_counts)

    def __repr__(self) -> str:
        where = self._path or "in memory"
        return (
            f"GalleryIndex({where}: {len(self)} faces, {self.num_identities} identities, "
            f"encoder {self._encoder}, retriever {self._retriever.name})"
        )

    def info(self) -> dict[str, Any]:
        """A summary: counts, encoder, retriever and its options, files."""
        with self._lock.read():
            m = self._manifest
            return {
                "path": str(self._path) if self._path else None,
                "location": self._location(),
                "faces": len(self._retriever),
                "identities": len(self._face_counts),
                "encoder": {
                    "name": self._encoder.name,
                    "version": self._encoder.version,
                    "dim": self._encoder.dim,
                },
                "retriever": self._retriever.name,
                "retriever_params": self._retriever.params(),
                "auto_retriever": self._auto,
                "generation": m.generation if m else 0,
                "created": m.created if m else None,
                "saved": m.saved if m else None,
                "files": {f.name: f.size for f in m.all_files()} if m else {},
            }

    def _location(self) -> str:
        """Where the data lives, in words."""
        if remote.keeps_records(self._retriever):
            copy = f"; metadata copied in directory {self._path}" if self._path else ""
            return self._retriever.where + copy
        return f"directory {self._path}" if self._path else "in memory (not saved)"

    def check_encoder(self, encoder: Any) -> None:
        """Raise :class:`EncoderMismatchError` unless ``encoder`` made this gallery's vectors."""
        check_encoder(self._encoder, EncoderInfo.of(encoder), self._where)

    # -- changing it ---------------------------------------------------------------------------

    def add(
        self,
        vectors: np.ndarray,
        identities: str | Sequence[str],
        *,
        sources: Sequence[str | None] | None = None,
        sha256s: Sequence[str | None] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> np.ndarray:
        """Add faces; return their new labels.

        ``vectors`` are ``(n, dim)`` embeddings of this gallery's encoder;
        ``identities`` one name per face (or one name for all); ``sources`` the image
        paths, ``sha256s`` the images' digests and ``metadata`` JSON-able dicts, each
        one per face when given. All-or-nothing: on an error nothing is added.
        """
        vectors = checked_vectors(vectors, self._encoder, "vectors to add")
        n = len(vectors)
        names = [identities] * n if isinstance(identities, str) else list(identities)
        names = checked_names(names, n)
        sources = per_face(sources, n, "sources")
        sha256s = checked_sha256s(per_face(sha256s, n, "sha256s"))
        metas = [dict(m) for m in per_face(metadata, n, "metadata", default={})]
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        with self._lock.write():
            labels = np.arange(self._next_label, self._next_label + n, dtype=np.int64)
            self._store.begin()
            try:
                ids_by_name = {name: self._store.identity_id(name) for name in dict.fromkeys(names)}
                identity_ids = [ids_by_name[name] for name in names]
                added = remote.now()
                self._store.add(labels, identity_ids, sources, sha256s, metas, added)
                if remote.keeps_records(self._retriever):  # who they are goes to the database
                    remote.add(
                        self._retriever, labels, vectors, names, sources, sha256s, metas, added
                    )
                else:
                    self._retriever.add(labels, vectors)
            except BaseException:
                self._store.rollback()
                raise
            self._store.commit()
            self._next_label += n
            if self._next_label > len(self._identity_of):
                grown = np.full(max(self._next_label, 2 * len(self._identity_of)), -1, np.int64)
                grown[: len(self._identity_of)] = self._identity_of
                self._identity_of = grown
            self._identity_of[labels] = identity_ids
            for name, identity_id in ids_by_name.items():
                self._names[identity_id] = name
            for identity_id in identity_ids:
                self._face_counts[identity_id] = self._face_counts.get(identity_id, 0) + 1
            if self._auto:
                wanted = choose_retriever(len(self._retriever), self.dim)
                if self._retriever.name == "exact" and wanted != "exact":
                    log.info("gallery passed %d faces: moving to %s", len(self._retriever), wanted)
                    self._retriever = self._rebuilt(wanted, {})
        return labels

    def remove(self, labels: Iterable[int]) -> int:
        """Remove faces by label; return how many. An unknown label removes nothing and raises."""
        labels = np.unique(np.asarray(list(labels), dtype=np.int64))
        if not len(labels):
            return 0
        with self._lock.write():
            known = (labels >= 0) & (labels < self._next_label)
            known[known] &= self._identity_of[labels[known]] >= 0
            if not known.all():
                raise GalleryError(
                    f"no faces with labels {labels[~known][:10].tolist()} in the gallery"
                )
            self._store.begin()
            try:
                self._store.remove(labels.tolist())
                self._retriever.remove(labels)
            except BaseException:
                self._store.rollback()
                raise
            self._store.commit()
            for identity_id in self._identity_of[labels].tolist():
                self._face_counts[identity_id] -= 1
                if not self._face_counts[identity_id]:
                    del self._face_counts[identity_id]
                    del self._names[identity_id]
            self._identity_of[labels] = -1
        return len(labels)

    def remove_identity(self, identity: str) -> int:
        """Remove every face of one identity; return how many."""
        faces = self.find(identity=identity)
        if not faces:
            raise GalleryError(f"identity {identity!r} is not in the gallery")
        return self.remove(f.label for f in faces)

    def rebuild(self, retriever: str | None = None, **options: Any) -> None:
        """Re-index every face with a retriever (default: the same one, same options).

        Use it to switch between ``exact`` and ``hnswlib``, to change hnswlib's ``M``
        or ``ef_construction``, or to reclaim the slots of removed faces.
        """
        if remote.keeps_records(self._retriever):
            raise GalleryError(
                f"{self._where}: Milvus builds and keeps this gallery's index; to index it "
                "differently, copy it with `facefit gallery migrate` and index options"
            )
        with self._lock.write():
            name = retriever or self._retriever.name
            params = {
                **(self._retriever.params() if name == self._retriever.name else {}),
                **options,
            }
            self._retriever = self._rebuilt(name, params)
            if retriever is not None:
                self._auto = False

    def tune(
        self, recall: float = 0.99, *, k: int = 10, sample: int = 200, seed: int = 0
    ) -> Tuning:
        """Set the retriever's search breadth to the smallest reaching ``recall`` of the exact top-``k``.

        hnswlib's ``ef`` or ScaNN's ``leaves_to_search``, measured on ``sample`` of
        the gallery's own faces (see :mod:`facefit.gallery.tuning`); saved with the
        gallery on the next save.
        """
        with self._lock.write():
            labels = np.flatnonzero(self._identity_of[: self._next_label] >= 0)
            return tune(self._retriever, labels, recall=recall, k=k, sample=sample, seed=seed)

    def tune_ef(
        self, recall: float = 0.99, *, k: int = 10, sample: int = 200, seed: int = 0
    ) -> Tuning:
        """:meth:`tune` for an hnswlib gallery (kept for code written before ``scann``)."""
        breadth = self._retriever.search_breadth
        if breadth is None or breadth.option != "ef":
            raise GalleryError(
                f"this gallery uses {self._retriever.name!r}: no ef to tune (tune() tunes any index)"
            )
        return self.tune(recall, k=k, sample=sample, seed=seed)

    def _rebuilt(self, name: str, params: dict[str, Any]) -> Retriever:
        new = create_retriever(name, self.dim, self._registry, **params)
        labels = np.flatnonzero(self._identity_of[: self._next_label] >= 0)
        for start in range(0, len(labels), 100_000):
            chunk = labels[start : start + 100_000]
            new.add(chunk, self._retriever.get_vectors(chunk))
        return new

    # -- reading it ----------------------------------------------------------------------------

    def find(
        self, *, identity: str | None = None, source: str | None = None, sha256: str | None = None
    ) -> list[FaceRecord]:
        """Faces matching every criterion given (all faces when none is)."""
        with self._lock.read():
            return self._store.find(identity=identity, source=source, sha256=sha256)

    def records(self, labels: Iterable[int]) -> dict[int, FaceRecord]:
        """What is stored about these faces, by label."""
        with self._lock.read():
            return self._store.records(list(labels))

    def search(self, query: np.ndarray, k: int = 10) -> list[IdentityHit]:
        """The ``k`` identities closest to one query embedding, best first."""
        return self.search_many(one_query(query, self.dim), k)[0]

    def search_many(self, queries: np.ndarray, k: int = 10) -> list[list[IdentityHit]]:
        """:meth:`search` for each row of ``(n, dim)`` queries (one retriever call)."""
        queries = checked_vectors(queries, self._encoder, "queries")
        with self._lock.read():
            check_k(k, len(self._face_counts), "identities", self._where)
            n = len(self._retriever)
            width = min(n, max(4 * k, k + 32))
            while True:  # widen until every query has k distinct identities in view
                scores, labels = self._retriever.search(queries, width)
                ids = self._identity_of[labels]
                firsts = [first_identities(row, k) for row in ids]
                if width == n or all(len(f) == k for f in firsts):
                    break
                width = min(n, 4 * width)
            # metadata only for the faces of the identities returned
            kept = np.isin(ids, [ids[q, j] for q, first in enumerate(firsts) for j in first])
            records = self._store.records(np.unique(labels[kept]).tolist())
            results = []
            for q, first in enumerate(firsts):
                wanted = {int(ids[q, j]): rank for rank, j in enumerate(first, start=1)}
                faces: dict[int, list[FaceHit]] = {i: [] for i in wanted}
                for j in range(width):
                    identity_id = int(ids[q, j])
                    if identity_id in faces:
                        faces[identity_id].append(
                            self._hit(int(labels[q, j]), float(scores[q, j]), j + 1, records)
                        )
                hits = [
                    IdentityHit(self._names[i], faces[i][0].score, rank, tuple(faces[i]))
                    for i, rank in wanted.items()
                ]
                results.append(sorted(hits, key=lambda h: h.rank))
            return results

    def search_faces(self, query: np.ndarray, k: int = 10) -> list[FaceHit]:
        """The ``k`` faces closest to one query embedding, best first (no fusion)."""
        return self.search_faces_many(one_query(query, self.dim), k)[0]

    def search_faces_many(self, queries: np.ndarray, k: int = 10) -> list[list[FaceHit]]:
        """:meth:`search_faces` for each row of ``(n, dim)`` queries."""
        queries = checked_vectors(queries, self._encoder, "queries")
        with self._lock.read():
            check_k(k, len(self._retriever), "faces", self._where)
            scores, labels = self._retriever.search(queries, k)
            records = self._store.records(np.unique(labels).tolist())
            return [
                [
                    self._hit(int(labels[q, j]), float(scores[q, j]), j + 1, records)
                    for j in range(k)
                ]
                for q in range(len(queries))
            ]

    def _hit(self, label: int, score: float, rank: int, records: dict[int, FaceRecord]) -> FaceHit:
        r = records[label]
        return FaceHit(label, r.identity, score, rank, r.source, r.sha256, r.metadata)

    # -- saving it -----------------------------------------------------------------------------

    def save(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path | str:
        """Write the gallery to a directory atomically; return the directory.

        A gallery opened from or created in a database (``milvus``) is committed where it
        lives when no ``path`` is given (its URL is returned; its faces were written there
        when added). Saved to a directory, it leaves its vectors and records in the
        database and writes a bookmark to them with a copy of the metadata.

        Without ``path``, saves where it was loaded from or last saved. A directory
        holding another gallery is replaced only with ``overwrite=True``; a
        non-empty directory that is not a gallery never is. If another process
        saved the same gallery since this one was loaded, the save is refused
        rather than losing that process's changes.
        """
        if remote.keeps_records(self._retriever) and path is None and self._path is None:
            with self._save_mutex, self._lock.read():  # a gallery in a database: commit there
                self._manifest = remote.save(
                    self._retriever, len(self._retriever), len(self._face_counts)
                )
            return self._retriever.location
        if path is None and self._path is None:
            raise GalleryError("this gallery was never saved: give a directory to save it to")
        target = Path(path) if path is not None else self._path
        assert target is not None
        with self._save_mutex, self._lock.read():
            target.mkdir(parents=True, exist_ok=True)
            persist.check_not_foreign(target)  # before a lock file is made there
            with directory_lock(target, exclusive=True):
                current = persist.read_manifest_quietly(target)
                same = self._path is not None and target.resolve() == self._path.resolve()
                loaded = self._manifest.generation if self._manifest else 0
                persist.check_save_target(target, current, same, loaded, overwrite)
                generation = max(loaded, current.generation if current else 0) + 1
                manifest = persist.write_generation(
                    target,
                    self._retriever.save,
                    self._store.save,
                    lambda files: self._make_manifest(files, generation),
                    generation,
                )
            self._manifest, self._path = manifest, target
        return target

    def _make_manifest(self, files: dict[str, tuple[FileRecord, ...]], generation: int) -> Manifest:
        from facefit.version import __version__

        now = datetime.now(UTC).isoformat(timespec="seconds")
        return Manifest(
            encoder=self._encoder,
            retriever=self._retriever.name,
            retriever_params=self._retriever.params(),
            auto_retriever=self._auto,
            faces=len(self._retriever),
            identities=len(self._face_counts),
            next_label=self._next_label,
            generation=generation,
            files=files,
            created=self._manifest.created if self._manifest else now,
            saved=now,
            facefit_version=__version__,
            retriever_package=retriever_package(self._retriever, self._registry),
        )
