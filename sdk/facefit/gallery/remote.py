"""Galleries kept in a database instead of a directory, addressed by a URL.

A retriever plugin that subclasses :class:`~facefit.interfaces.DatabaseRetriever`
(``keeps_records``) keeps a whole gallery —
vectors, identities, provenance and the gallery's description — in a database:
``milvus`` does, in a Milvus collection (``facefit_plugins.retrievers.milvus``). Such
a gallery has a URL whose scheme is the plugin's name (``milvus://host:19530/mugshots``,
``milvus:faces.db/mugshots``), no local files and no index to rebuild. Opening it reads
the identities and provenance of its faces into memory (what ranking by identity
needs; the vectors stay in the database); every add and remove is written to the
database before it returns, and :meth:`GalleryIndex.save` stores the search options
and flushes (saved to a directory instead, it writes a bookmark to the collection).

What such a retriever provides besides :class:`~facefit.interfaces.Retriever` (declared
on :class:`~facefit.interfaces.DatabaseRetriever`):

- ``stored_gallery(uri, **options)`` (classmethod): the stored description — a dict
  with ``encoder``, ``retriever_params``, ``next_label``, ``generation``, ``created``,
  ``saved`` — or None where the database holds no such collection;
- ``start_gallery(encoder)``: record the encoder of a new, empty gallery;
- ``add_faces(labels, vectors, records)``: add new faces with their
  :class:`~facefit.gallery.store.FaceRecord`, all or nothing;
- ``face_records()``: every face, without vectors;
- ``commit(**fields)``: store the search options and ``fields``, count a generation,
  make writes durable;
- ``location`` (its URL, no secrets in it) and ``where`` (the same in words).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from facefit.gallery.checks import check_encoder
from facefit.gallery.errors import GalleryError
from facefit.gallery.manifest import EncoderInfo, Manifest
from facefit.gallery.store import FaceRecord, MetadataStore
from facefit.interfaces import DatabaseRetriever

if TYPE_CHECKING:
    from facefit.gallery.index import GalleryIndex
    from facefit.interfaces import Retriever
    from facefit.registry import Registry

_SCHEME = re.compile(r"^([a-z][a-z0-9_-]+)(\+[a-z]+)?:")


def database_scheme(location: Any) -> str | None:
    """The retriever named by a database URL (``milvus://…`` → ``milvus``), else None."""
    if not isinstance(location, str):
        return None
    match = _SCHEME.match(location)
    return match.group(1) if match else None


def keeps_records(retriever: Retriever) -> bool:
    """Whether ``retriever`` holds the whole gallery in a database."""
    return retriever.keeps_records


def load(
    cls: type[GalleryIndex],
    location: str,
    *,
    encoder: Any = None,
    registry: Registry | None = None,
    options: dict[str, Any] | None = None,
) -> GalleryIndex:
    """Open the gallery at a database URL (see :meth:`GalleryIndex.load`)."""
    from facefit.gallery.choice import create_retriever

    if registry is None:
        from facefit.registry import Registry

        registry = Registry.load()
    name = database_scheme(location)
    factory = registry.entry("retriever", name).factory
    if not (isinstance(factory, type) and issubclass(factory, DatabaseRetriever)):
        raise GalleryError(
            f"{location}: retriever {name!r} does not keep galleries in a database; "
            "give a gallery directory instead"
        )
    options = dict(options or {})
    stored = factory.stored_gallery(location, **options)
    if stored is None or stored.get("encoder") is None:
        raise GalleryError(
            f"{location}: no gallery there; build one with "
            f"`facefit gallery build DIR --uri {location}`"
        )
    info = EncoderInfo(**stored["encoder"])
    if encoder is not None:
        check_encoder(info, EncoderInfo.of(encoder), location)
    params = {**stored.get("retriever_params", {}), **options}
    retriever = create_retriever(name, info.dim, registry, uri=location, mode="open", **params)
    store = MetadataStore.new()
    _fill(store, retriever.face_records())
    faces, identities = store.counts()
    manifest = Manifest(
        encoder=info,
        retriever=name,
        retriever_params=retriever.params(),
        auto_retriever=False,
        faces=faces,
        identities=identities,
        next_label=int(stored["next_label"]),
        generation=int(stored.get("generation", 0)),
        files={},
        created=str(stored.get("created")),
        saved=str(stored.get("saved")),
        facefit_version=str(stored.get("facefit_version", "")),
    )
    return cls(info, retriever, store, auto_retriever=False, registry=registry, manifest=manifest)


def _fill(store: MetadataStore, records: Any, chunk: int = 10_000) -> None:
    """Copy face records into an empty store, keeping their labels and enrolment times."""
    batch: list[Any] = []

    def flush() -> None:
        store.begin()
        try:
            ids = [store.identity_id(r.identity) for r in batch]
            store.add(
                [r.label for r in batch],
                ids,
                [r.source for r in batch],
                [r.sha256 for r in batch],
                [r.metadata for r in batch],
                added=[r.added for r in batch],
            )
        except BaseException:
            store.rollback()
            raise
        store.commit()
        batch.clear()

    for record in records:
        batch.append(record)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()


def start(retriever: Retriever, encoder: EncoderInfo) -> None:
    """Record the encoder in a new gallery's database (from :meth:`GalleryIndex.create`)."""
    if len(retriever):
        raise GalleryError(f"{retriever.where}: pass an empty collection")
    retriever.start_gallery({"name": encoder.name, "version": encoder.version, "dim": encoder.dim})


def add(
    retriever: Retriever,
    labels: np.ndarray,
    vectors: np.ndarray,
    names: Sequence[str],
    sources: Sequence[str | None],
    sha256s: Sequence[str | None],
    metas: Sequence[dict[str, Any]],
    added: str,
) -> None:
    """Write new faces with who they are to the database (from :meth:`GalleryIndex.add`)."""
    records = [
        FaceRecord(int(label), names[i], sources[i], sha256s[i], metas[i], added)
        for i, label in enumerate(labels.tolist())
    ]
    retriever.add_faces(labels, vectors, records)


def now() -> str:
    """The time stamp a face is enrolled with."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def save(retriever: Retriever, faces: int, identities: int) -> Manifest:
    """Commit a database gallery: its search options, the time; flush."""
    from facefit.version import __version__

    saved = now()
    stored = retriever.commit(saved=saved, facefit_version=__version__)
    return Manifest(
        encoder=EncoderInfo(**stored["encoder"]),
        retriever=retriever.name,
        retriever_params=retriever.params(),
        auto_retriever=False,
        faces=faces,
        identities=identities,
        next_label=int(stored["next_label"]),
        generation=int(stored["generation"]),
        files={},
        created=str(stored.get("created")),
        saved=saved,
        facefit_version=__version__,
    )
