"""The manifest: what a gallery directory holds and how to check it.

``manifest.json`` is written last on every save and names every other file with
its size and sha256, so the manifest alone decides which files make up the
gallery. It records the face encoder (name, version, dimension) the vectors came
from, so a gallery is never searched with embeddings of another encoder, and the
retriever with the options that recreate it. The manifest carries its own sha256,
so a damaged manifest is refused too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facefit.gallery.errors import CorruptGalleryError, GalleryError

FORMAT = "facefit-gallery"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class EncoderInfo:
    """The face encoder a gallery's vectors come from."""

    name: str
    version: str
    dim: int

    @classmethod
    def of(cls, encoder: Any) -> EncoderInfo:
        """From a :class:`~facefit.interfaces.FaceEncoder` (instance or class) or an EncoderInfo."""
        if isinstance(encoder, EncoderInfo):
            return encoder
        try:
            return cls(str(encoder.name), str(encoder.version), int(encoder.dim))
        except AttributeError:
            raise GalleryError(
                f"{encoder!r} does not describe a face encoder: it needs name, version and dim"
            ) from None

    def __str__(self) -> str:
        return f"{self.name} (version {self.version}, {self.dim}-d)"


@dataclass(frozen=True)
class FileRecord:
    """One file of a gallery: its name in the directory, size and sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """Everything needed to load and check a gallery directory."""

    encoder: EncoderInfo
    retriever: str
    retriever_params: dict[str, Any]
    auto_retriever: bool
    """True when ``retriever`` was chosen by size and may be changed as the gallery grows."""
    faces: int
    identities: int
    next_label: int
    generation: int
    """Counts the saves; file names carry it, so a save never overwrites a file in use."""
    files: dict[str, tuple[FileRecord, ...]]
    """Files by role: ``"index"`` (the retriever's) and ``"metadata"`` (the SQLite store)."""
    created: str
    saved: str
    facefit_version: str
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    retriever_package: dict[str, str] | None = None
    """``{"name": …, "version": …}`` of the package that provides the retriever plugin
    (None in galleries saved before facefit recorded it, or for a plugin registered in code)."""

    def all_files(self) -> list[FileRecord]:
        return [f for records in self.files.values() for f in records]

    def to_json(self) -> bytes:
        """The manifest as JSON, with a ``checksum`` of its other content."""
        body = _body(self)
        body["checksum"] = _checksum(body)
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        """Parse and check a manifest; ``where`` names it in errors."""

        def corrupt(why: str) -> CorruptGalleryError:
            return CorruptGalleryError(
                f"{where} is corrupt ({why}); restore the gallery from a backup or "
                "rebuild it with `facefit gallery build`"
            )

        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise corrupt(f"not valid JSON: {exc}") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise corrupt(f"not a {FORMAT} manifest")
        version = body.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise GalleryError(
                f"{where}: gallery format {version} is newer than this facefit reads "
                f"({FORMAT_VERSION}); upgrade facefit"
            )
        stored = body.pop("checksum", None)
        if stored != _checksum(body):
            raise corrupt("its checksum does not match its content")
        try:
            enc = body["encoder"]
            files = {
                role: tuple(
                    FileRecord(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in recs
                )
                for role, recs in body["files"].items()
            }
            manifest = cls(
                encoder=EncoderInfo(str(enc["name"]), str(enc["version"]), int(enc["dim"])),
                retriever=str(body["retriever"]["name"]),
                retriever_params=dict(body["retriever"]["params"]),
                auto_retriever=bool(body["retriever"]["auto"]),
                faces=int(body["faces"]),
                identities=int(body["identities"]),
                next_label=int(body["next_label"]),
                generation=int(body["generation"]),
                files=files,
                created=str(body["created"]),
                saved=str(body["saved"]),
                facefit_version=str(body["facefit_version"]),
                format_version=int(version),
                extra=dict(body.get("extra", {})),
                retriever_package=_package(body["retriever"].get("package")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise corrupt(f"missing or malformed field: {exc}") from None
        for record in manifest.all_files():
            if Path(record.name).name != record.name or record.name.startswith("."):
                raise corrupt(f"file name {record.name!r} is not a plain file name")
        return manifest


def _package(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    return {"name": str(value["name"]), "version": str(value["version"])}


def _body(m: Manifest) -> dict[str, Any]:
    retriever: dict[str, Any] = {
        "name": m.retriever,
        "params": m.retriever_params,
        "auto": m.auto_retriever,
    }
    if m.retriever_package is not None:  # absent, not null: older manifests keep their checksum
        retriever["package"] = dict(m.retriever_package)
    return {
        "format": FORMAT,
        "format_version": m.format_version,
        "encoder": asdict(m.encoder),
        "retriever": retriever,
        "faces": m.faces,
        "identities": m.identities,
        "next_label": m.next_label,
        "generation": m.generation,
        "files": {role: [asdict(f) for f in recs] for role, recs in m.files.items()},
        "created": m.created,
        "saved": m.saved,
        "facefit_version": m.facefit_version,
        "extra": m.extra,
    }


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
