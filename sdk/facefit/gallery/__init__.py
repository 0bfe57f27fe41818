"""The face gallery: mugshots with identities, persisted, searchable by identity.

- :class:`GalleryIndex` — add, remove, search (by identity, max-fused over each
  identity's faces, or by face), save and load a gallery directory;
- :func:`choose_retriever` — ``exact`` for small galleries, ``scann`` (or ``hnswlib``) beyond;
- :meth:`GalleryIndex.tune_ef` — hnswlib's breadth for a recall target, measured;
- :mod:`facefit.gallery.build` — enrol image folders (what ``facefit gallery`` runs).

See :mod:`facefit.gallery.persist` for the directory layout and why saves are safe.
"""

from facefit.gallery.choice import EXACT_MAX_VALUES, choose_retriever, create_retriever
from facefit.gallery.errors import (
    CorruptGalleryError,
    EmptyGalleryError,
    EncoderMismatchError,
    GalleryError,
)
from facefit.gallery.hits import FaceHit, IdentityHit
from facefit.gallery.index import GalleryIndex
from facefit.gallery.manifest import EncoderInfo, Manifest
from facefit.gallery.store import FaceRecord
from facefit.gallery.tuning import Tuning

__all__ = [
    "EXACT_MAX_VALUES",
    "CorruptGalleryError",
    "EmptyGalleryError",
    "EncoderInfo",
    "EncoderMismatchError",
    "FaceHit",
    "FaceRecord",
    "GalleryError",
    "GalleryIndex",
    "IdentityHit",
    "Manifest",
    "Tuning",
    "choose_retriever",
    "create_retriever",
]
