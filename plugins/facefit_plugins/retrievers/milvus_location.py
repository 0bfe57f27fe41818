"""Where a gallery on Milvus lives: a Milvus Lite file or a server, and a collection.

A gallery on Milvus is addressed by one URL:

- ``milvus://HOST[:PORT]/COLLECTION`` — a Milvus server or cluster over gRPC
  (``http://HOST:PORT``; the port defaults to 19530);
- ``milvus+https://HOST[:PORT]/COLLECTION`` — the same over TLS (a managed service);
- ``milvus:PATH.db/COLLECTION`` — a Milvus Lite file on this machine (relative or
  absolute ``PATH``; ``milvus:///abs/path.db/COLLECTION`` works too).

The collection defaults to ``facefit_gallery``. pymilvus's own forms (``http://host:19530``,
``path.db``) are accepted too, with the collection given separately. The token is never
part of a location: it comes from the ``token`` option or ``MILVUS_TOKEN``, so it does
not end up in logs, manifests or ``facefit gallery info``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from facefit.errors import InputError

DEFAULT_COLLECTION = "facefit_gallery"
DEFAULT_PORT = 19530
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_FORMS = (
    "milvus://HOST[:PORT]/COLLECTION (a server), milvus+https://HOST[:PORT]/COLLECTION, "
    "or milvus:PATH.db/COLLECTION (a Milvus Lite file)"
)


@dataclass(frozen=True)
class MilvusLocation:
    """A Milvus endpoint as pymilvus takes it (``uri``) and a collection in it."""

    uri: str
    collection: str

    @property
    def is_lite(self) -> bool:
        """Whether this is a Milvus Lite file (embedded, this machine only)."""
        return not self.uri.startswith(("http://", "https://"))

    @property
    def url(self) -> str:
        """The canonical ``milvus:`` URL of this location."""
        if self.is_lite:
            return f"milvus:{self.uri}/{self.collection}"
        scheme, rest = self.uri.split("://", 1)
        prefix = "milvus" if scheme == "http" else "milvus+https"
        return f"{prefix}://{rest}/{self.collection}"

    def describe(self) -> str:
        """Where the data lives, in words."""
        if self.is_lite:
            return f"Milvus Lite file {self.uri}, collection {self.collection}"
        return f"Milvus server {self.uri}, collection {self.collection}"


def parse_location(uri: str, collection: str | None = None) -> MilvusLocation:
    """A :class:`MilvusLocation` from a ``milvus:`` URL or a pymilvus URI (see the module doc).

    ``collection`` names the collection when the URL does not; giving two different
    names is an error.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InputError(f"milvus: expected a location such as {_FORMS}, got {uri!r}")
    text = uri.strip()
    if text.startswith(("milvus+https://", "milvus://")):
        scheme, rest = text.split("://", 1)
        if rest.startswith("/") or ".db" in rest.split("/", 1)[0]:
            endpoint, named = _lite("/" + rest.lstrip("/") if rest.startswith("/") else rest, uri)
        else:
            endpoint, named = _server("https" if scheme == "milvus+https" else "http", rest, uri)
    elif text.startswith("milvus:"):
        endpoint, named = _lite(text.removeprefix("milvus:"), uri)
    elif text.startswith(("http://", "https://")):
        scheme, rest = text.split("://", 1)
        endpoint, named = _server(scheme, rest, uri)
    elif text.endswith(".db"):
        endpoint, named = str(Path(text).expanduser().resolve()), None
    else:
        raise InputError(f"milvus: cannot read the location {uri!r}; use {_FORMS}")
    if named and collection and named != collection:
        raise InputError(
            f"milvus: the location {uri!r} names collection {named!r} but "
            f"collection={collection!r} was given too; give one"
        )
    name = named or collection or DEFAULT_COLLECTION
    if not _COLLECTION_NAME.match(name):
        raise InputError(
            f"milvus: collection name {name!r} is not valid; use letters, digits and "
            "underscores, starting with a letter or underscore"
        )
    return MilvusLocation(endpoint, name)


def _server(scheme: str, rest: str, original: str) -> tuple[str, str | None]:
    host_port, _, path = rest.partition("/")
    if not host_port or "@" in host_port:
        raise InputError(
            f"milvus: {original!r} has no host (or has credentials in it: pass the token "
            "with MILVUS_TOKEN or the token option instead)"
        )
    host, colon, port = host_port.rpartition(":")
    if not colon:
        host, port = host_port, str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"milvus: {original!r} has a bad port {port!r}")
    return f"{scheme}://{host}:{port}", path.strip("/") or None


def _lite(rest: str, original: str) -> tuple[str, str | None]:
    parts = rest.split("/")
    for end, part in enumerate(parts):
        if part.endswith(".db") and len(part) > 3:
            file = "/".join(parts[: end + 1])
            named = "/".join(parts[end + 1 :]).strip("/") or None
            return str(Path(file).expanduser().resolve()), named
    raise InputError(
        f"milvus: {original!r} names no Milvus Lite file (a path ending in .db); use {_FORMS}"
    )
