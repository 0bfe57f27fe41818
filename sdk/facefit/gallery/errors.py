"""Errors about galleries; each names the gallery and says what to do."""

from __future__ import annotations

from facefit.errors import InputError


class GalleryError(InputError):
    """A gallery cannot be used as asked (missing, empty, wrong query, bad identity)."""


class CorruptGalleryError(GalleryError):
    """A gallery's files are missing, truncated or do not match their checksums."""


class EncoderMismatchError(GalleryError):
    """A gallery was built with a different face encoder than the one offered."""


class EmptyGalleryError(GalleryError):
    """A search was asked of a gallery that holds no faces."""
