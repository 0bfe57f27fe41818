"""Benchmark manifests: who the probes are, what evidence each has, and the gallery.

A manifest is a JSON file (``"format": "facefit-benchmark"``) listing

- ``gallery``: photos with their identities (the mugshots a probe is matched against),
  each optionally with the ``person`` it shows: identities of one person (say, two
  photos of a celebrity that a data set labels as two identities) are one at person
  level (:mod:`facefit.evaluation.metrics`);
- ``distractors``: optional folders of extra gallery photos, each photo its own
  identity that no probe has (they make the search harder, as a real gallery would);
- ``probes``: one evidence set each — any subset of ``sketch``, ``lq`` (a low-quality
  image), ``text`` and ``reference`` (a clean photo) — with the true identity and the
  ``probe_set`` it belongs to (``"sketch"``, ``"lq16"``…); metrics are reported per
  probe set. ``lq_size`` marks a low-quality image *made* from a full-quality photo at
  that size (the IdentiFace protocol) rather than a real low-quality frame.
  ``sketch``, ``lq`` and ``text`` may each be a list (several witnesses' drawings or
  descriptions, several camera frames): the first is the probe's ``sketch`` / ``lq`` /
  ``text`` and the others its ``extra_sketches`` / ``extra_lq`` / ``extra_texts``, as
  in :class:`facefit.types.Evidence`; ``lq_size`` applies to every frame;
- ``split``: optionally, which split of which data the benchmark is (``name``,
  ``fingerprint``), carried into the report.

Paths are relative to ``root`` (itself relative to the manifest's folder), so a
manifest and its images can move together. :meth:`Manifest.validate` checks every
file and identity before any work starts and lists all the problems at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from facefit.errors import InputError
from facefit.files import atomic_write_text

__all__ = [
    "FORMAT",
    "IMAGE_EXTENSIONS",
    "LQ_SIZES",
    "PROBE_MODALITIES",
    "GalleryImage",
    "Manifest",
    "ManifestError",
    "Probe",
    "load_manifest",
]

FORMAT = "facefit-benchmark"
VERSION = 1
PROBE_MODALITIES = ("sketch", "lq", "text", "reference")
"""Evidence a probe may carry (the SDK's modalities)."""
IMAGE_MODALITIES = ("sketch", "lq", "reference")
LIST_MODALITIES = {"sketch": "extra_sketches", "lq": "extra_lq", "text": "extra_texts"}
"""Evidence a manifest may list several of, and the :class:`Probe` field of the others."""
LQ_SIZES = (8, 16, 32)
"""Sizes at which low-quality probes are made from a true photo (IdentiFace used 8)."""
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".pgm",
    ".ppm",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
    ".gif",
)
DISTRACTOR_PREFIX = "distractor:"
_MAX_LISTED = 12


class ManifestError(InputError):
    """A benchmark manifest is malformed or points at missing files or identities."""


@dataclass(frozen=True)
class GalleryImage:
    """One gallery photo and the identity it shows."""

    id: str
    identity: str
    path: str
    person: str | None = None
    """The person the photo shows, when declared; None: the identity is its own person."""


@dataclass(frozen=True)
class Probe:
    """One evidence set with its true identity.

    ``lq_size`` set means ``lq`` is a full-quality photo that is reduced to
    ``lq_size``×``lq_size`` pixels when the probe is loaded. ``true_photo`` is the
    photo a generated face is graded against (default: the identity's first
    gallery photo). ``groups`` label the probe for bias breakdowns
    (``{"gender": "female"}``).

    ``extra_sketches``, ``extra_lq`` and ``extra_texts`` are the probe's further
    drawings, frames and descriptions (other witnesses or cameras) after the first in
    ``sketch``, ``lq`` and ``text``; ``lq_size`` applies to every frame.
    """

    id: str
    identity: str
    probe_set: str
    sketch: str | None = None
    lq: str | None = None
    lq_size: int | None = None
    text: str | None = None
    reference: str | None = None
    true_photo: str | None = None
    groups: Mapping[str, str] = field(default_factory=dict)
    extra_sketches: tuple[str, ...] = ()
    extra_lq: tuple[str, ...] = ()
    extra_texts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", MappingProxyType(dict(self.groups)))
        for name in LIST_MODALITIES.values():
            extra = getattr(self, name)
            if isinstance(extra, str):
                raise ManifestError(f"probe {self.id!r}: {name} must be a list, got a string")
            object.__setattr__(self, name, tuple(extra or ()))

    def entries(self, modality: str) -> tuple[str, ...]:
        """Every entry of a modality: the first, then the extra ones (empty when absent)."""
        first = getattr(self, modality)
        extra = getattr(self, LIST_MODALITIES[modality]) if modality in LIST_MODALITIES else ()
        return () if first is None else (first, *extra)

    @property
    def evidence_counts(self) -> dict[str, int]:
        """How many of each modality the probe has (those present, in order)."""
        return {m: len(self.entries(m)) for m in self.modalities}

    @property
    def modalities(self) -> tuple[str, ...]:
        """The evidence present, in :data:`PROBE_MODALITIES` order."""
        return tuple(m for m in PROBE_MODALITIES if getattr(self, m) is not None)

    @property
    def synthetic_lq(self) -> bool:
        """Whether the low-quality image is made from a full-quality photo."""
        return self.lq is not None and self.lq_size is not None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "identity": self.identity,
            "probe_set": self.probe_set,
        }
        for key in (*PROBE_MODALITIES, "lq_size", "true_photo"):
            if getattr(self, key) is not None:
                values = self.entries(key) if key in LIST_MODALITIES else ()
                data[key] = list(values) if len(values) > 1 else getattr(self, key)
        if self.groups:
            data["groups"] = dict(self.groups)
        return data


@dataclass(frozen=True)
class Manifest:
    """A benchmark: gallery photos, optional distractor folders, and probes."""

    name: str
    root: Path
    gallery: tuple[GalleryImage, ...]
    probes: tuple[Probe, ...]
    distractors: tuple[str, ...] = ()
    description: str = ""
    source: str = "<in memory>"
    split: Mapping[str, str] | None = None
    """Which split this is, e.g. ``{"name": "dev", "fingerprint": "a45c…"}``; None: not a split."""

    def path(self, relative: str) -> Path:
        """A manifest path resolved against :attr:`root`."""
        return self.root / relative

    @property
    def identities(self) -> tuple[str, ...]:
        """The enrolled identities (distractors excluded), sorted."""
        return tuple(sorted({g.identity for g in self.gallery}))

    @property
    def persons(self) -> dict[str, str]:
        """Identity → person, for the enrolled identities whose person is declared.

        Empty when the benchmark declares no persons: then every identity is its own
        person and only photo-level scores are reported.
        """
        return {g.identity: g.person for g in self.gallery if g.person is not None}

    @property
    def probe_sets(self) -> tuple[str, ...]:
        """Probe-set names in order of first appearance."""
        return tuple(dict.fromkeys(p.probe_set for p in self.probes))

    def select(self, probe_sets: Iterable[str] | None = None, limit: int | None = None) -> Manifest:
        """Keep only some probe sets, and at most ``limit`` probes of each."""
        wanted = None if probe_sets is None else list(dict.fromkeys(probe_sets))
        if wanted is not None:
            unknown = [s for s in wanted if s not in self.probe_sets]
            if unknown:
                raise ManifestError(
                    f"benchmark {self.name!r}: no probe set {', '.join(map(repr, unknown))}; "
                    f"it has: {', '.join(self.probe_sets) or 'none'}"
                )
        kept: list[Probe] = []
        counts: dict[str, int] = {}
        for probe in self.probes:
            if wanted is not None and probe.probe_set not in wanted:
                continue
            if limit is not None and counts.get(probe.probe_set, 0) >= limit:
                continue
            counts[probe.probe_set] = counts.get(probe.probe_set, 0) + 1
            kept.append(probe)
        return replace(self, probes=tuple(kept))

    def probes_of(self, probe_set: str) -> tuple[Probe, ...]:
        return tuple(p for p in self.probes if p.probe_set == probe_set)

    def true_photo(self, probe: Probe) -> str | None:
        """The photo a probe's generated faces are graded against."""
        if probe.true_photo is not None:
            return probe.true_photo
        return next((g.path for g in self.gallery if g.identity == probe.identity), None)

    def distractor_images(self) -> tuple[GalleryImage, ...]:
        """Every image in the distractor folders, each its own identity."""
        images = []
        for folder in self.distractors:
            base = self.path(folder)
            for file in _image_files(base):
                rel = f"{folder.rstrip('/')}/{file.relative_to(base).as_posix()}"
                images.append(GalleryImage(rel, DISTRACTOR_PREFIX + rel, rel))
        return tuple(images)

    def full_gallery(self) -> tuple[GalleryImage, ...]:
        """Enrolled photos followed by the distractors."""
        return self.gallery + self.distractor_images()

    # -- checking ------------------------------------------------------------------------

    def validate(self) -> Manifest:
        """Return self, or raise :class:`ManifestError` listing every problem found."""
        problems = _problems(self)
        if problems:
            shown = "\n".join(f"  - {p}" for p in problems[:_MAX_LISTED])
            more = len(problems) - _MAX_LISTED
            tail = f"\n  … and {more} more" if more > 0 else ""
            raise ManifestError(
                f"benchmark {self.name!r} ({self.source}) is not usable: "
                f"{len(problems)} problem(s)\n{shown}{tail}"
            )
        return self

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        """The manifest as JSON data; ``root`` is written relative to ``relative_to``."""
        root = self.root.resolve()
        if relative_to is not None:
            root_text = os.path.relpath(root, Path(relative_to).resolve())
        else:
            root_text = str(root)
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "root": Path(root_text).as_posix(),
        }
        if self.description:
            data["description"] = self.description
        if self.split is not None:
            data["split"] = dict(self.split)
        data["gallery"] = [
            {"id": g.id, "identity": g.identity, "path": g.path}
            | ({"person": g.person} if g.person is not None else {})
            for g in self.gallery
        ]
        if self.distractors:
            data["distractors"] = list(self.distractors)
        data["probes"] = [p.to_json() for p in self.probes]
        return data

    def save(self, path: str | Path) -> Path:
        """Write the manifest as JSON (root stored relative to the file's folder)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_json(relative_to=path.parent)
        return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _person_problems(gallery: Iterable[GalleryImage]) -> list[str]:
    """An identity is one person: all its photos must declare the same one (or none)."""
    problems = []
    persons: dict[str, set[str | None]] = {}
    for g in gallery:
        if g.person is not None and not g.person.strip():
            problems.append(f"gallery photo {g.id!r}: empty person")
        persons.setdefault(g.identity, set()).add(g.person)
    for identity, declared in persons.items():
        if len(declared) > 1:
            names = ", ".join(sorted(repr(p) for p in declared if p is not None))
            unset = " and none" if None in declared else ""
            problems.append(
                f"identity {identity!r}: its photos declare different persons ({names}{unset}); "
                "an identity is one person: give all its photos the same person"
            )
    return problems


def _problems(manifest: Manifest) -> list[str]:
    problems: list[str] = []
    if not manifest.gallery:
        problems.append('the gallery is empty: list at least one photo under "gallery"')
    if not manifest.probes:
        problems.append('there are no probes: list at least one under "probes"')
    if not manifest.root.is_dir():
        problems.append(f"root folder not found: {manifest.root}")
        return problems
    seen: set[str] = set()
    for g in manifest.gallery:
        where = f"gallery photo {g.id!r}"
        if g.id in seen:
            problems.append(f"{where}: id used twice")
        seen.add(g.id)
        if not g.identity:
            problems.append(f"{where}: empty identity")
        elif g.identity.startswith(DISTRACTOR_PREFIX):
            problems.append(f"{where}: identity may not start with {DISTRACTOR_PREFIX!r}")
        if not manifest.path(g.path).is_file():
            problems.append(f"{where}: file not found: {manifest.path(g.path)}")
    problems += _person_problems(manifest.gallery)
    for folder in manifest.distractors:
        base = manifest.path(folder)
        if not base.is_dir():
            problems.append(f"distractor folder not found: {base}")
        elif not _image_files(base):
            problems.append(
                f"distractor folder {base} holds no images ({', '.join(IMAGE_EXTENSIONS[:4])}…)"
            )
    identities = {g.identity for g in manifest.gallery}
    seen = set()
    for p in manifest.probes:
        where = f"probe {p.id!r}"
        if p.id in seen:
            problems.append(f"{where}: id used twice")
        seen.add(p.id)
        if p.identity not in identities:
            problems.append(
                f"{where}: unknown identity {p.identity!r} (no gallery photo has it; "
                "a probe's true identity must be enrolled)"
            )
        if not p.probe_set:
            problems.append(f"{where}: empty probe_set")
        if not p.modalities:
            problems.append(f"{where}: no evidence; give any of {', '.join(PROBE_MODALITIES)}")
        for modality, name in LIST_MODALITIES.items():
            if getattr(p, name) and getattr(p, modality) is None:
                problems.append(f"{where}: {name} given without a first {modality}")
        for n, text in enumerate(p.entries("text"), start=1):
            if not text.strip():
                problems.append(f"{where}: text{'' if n == 1 else f' {n}'} is empty")
        if p.lq_size is not None and (p.lq is None or p.lq_size not in LQ_SIZES):
            problems.append(
                f"{where}: lq_size must be one of {', '.join(map(str, LQ_SIZES))} "
                f"and needs an lq photo, got {p.lq_size!r}"
            )
        for key in (*IMAGE_MODALITIES, "true_photo"):
            paths = p.entries(key) if key in LIST_MODALITIES else (getattr(p, key),)
            for n, rel in enumerate(paths, start=1):
                which = key if n == 1 else f"{key} {n}"
                if rel is not None and not manifest.path(rel).is_file():
                    problems.append(f"{where}: {which} file not found: {manifest.path(rel)}")
    return problems


# -- reading -------------------------------------------------------------------------------


def _field(
    item: Mapping[str, Any], key: str, where: str, kind: type | tuple, required: bool
) -> Any:
    value = item.get(key)
    if value is None:
        if required:
            raise ManifestError(f"{where}: missing {key!r}")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        names = {str: "text", int: "an integer"}.get(kind, getattr(kind, "__name__", str(kind)))
        raise ManifestError(f"{where}: {key!r} must be {names}, got {value!r}")
    return value


def _list_field(
    item: Mapping[str, Any], key: str, where: str, probe_id: str
) -> tuple[str | None, tuple[str, ...]]:
    """A modality given as one text or a list of them: the first, and the others."""
    value = item.get(key)
    if not isinstance(value, list):
        return _field(item, key, where, str, False), ()
    where = f"{where} (probe {probe_id!r})"
    what = "descriptions" if key == "text" else "paths"
    if not value:
        raise ManifestError(
            f"{where}: {key!r} is an empty list; give one or more {what}, or leave {key!r} out"
        )
    for n, entry in enumerate(value, start=1):
        if not isinstance(entry, str):
            raise ManifestError(
                f"{where}: {key!r} entry {n} must be text ({what[:-1]}), got {entry!r}"
            )
    return value[0], tuple(value[1:])


def _as_id(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def parse_manifest(data: Any, *, base: Path, source: str = "<manifest>") -> Manifest:
    """Build a :class:`Manifest` from parsed JSON; ``base`` is the folder ``root`` is relative to.

    Checks the structure only; call :meth:`Manifest.validate` to check files and identities.
    """
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: expected a JSON object with gallery and probes")
    if data.get("format") != FORMAT:
        raise ManifestError(f'{source}: not a facefit benchmark (expected "format": "{FORMAT}")')
    if data.get("version", VERSION) != VERSION:
        raise ManifestError(f"{source}: manifest version {data.get('version')!r} is not supported")
    known = {
        "format",
        "version",
        "name",
        "root",
        "description",
        "split",
        "gallery",
        "distractors",
        "probes",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise ManifestError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    name = _field(data, "name", source, str, False) or Path(source).stem
    root = base / (_field(data, "root", source, str, False) or ".")
    gallery_data = data.get("gallery")
    probes_data = data.get("probes")
    if not isinstance(gallery_data, list):
        raise ManifestError(f'{source}: "gallery" must be a list of {{id, identity, path}}')
    if not isinstance(probes_data, list):
        raise ManifestError(f'{source}: "probes" must be a list')
    gallery = []
    for i, item in enumerate(gallery_data):
        where = f"{source}: gallery[{i}]"
        if not isinstance(item, dict):
            raise ManifestError(f"{where}: expected an object")
        item = {k: _as_id(v) if k in ("id", "identity", "person") else v for k, v in item.items()}
        path = _field(item, "path", where, str, True)
        gallery.append(
            GalleryImage(
                _field(item, "id", where, str, False) or path,
                _field(item, "identity", where, str, True),
                path,
                _field(item, "person", where, str, False),
            )
        )
    probes = []
    for i, item in enumerate(probes_data):
        where = f"{source}: probes[{i}]"
        if not isinstance(item, dict):
            raise ManifestError(f"{where}: expected an object")
        item = {k: _as_id(v) if k in ("id", "identity") else v for k, v in item.items()}
        allowed = {
            "id",
            "identity",
            "probe_set",
            *PROBE_MODALITIES,
            "lq_size",
            "true_photo",
            "groups",
        }
        extra = sorted(set(item) - allowed)
        if extra:
            raise ManifestError(
                f"{where}: unknown key(s) {', '.join(extra)}; known: {', '.join(sorted(allowed))}"
            )
        groups = item.get("groups") or {}
        if not isinstance(groups, dict) or not all(isinstance(v, str) for v in groups.values()):
            raise ManifestError(f'{where}: "groups" must map group names to text labels')
        probe_id = _field(item, "id", where, str, False) or f"probe-{i}"
        if isinstance(item.get("reference"), list):
            raise ManifestError(
                f"{where} (probe {probe_id!r}): 'reference' takes one photo, not a list "
                "(sketch, lq and text may be lists)"
            )
        values = {k: _field(item, k, where, str, False) for k in ("reference", "true_photo")}
        extras = {}
        for modality, extra in LIST_MODALITIES.items():
            values[modality], extras[extra] = _list_field(item, modality, where, probe_id)
        modalities = [m for m in PROBE_MODALITIES if values[m] is not None]
        probes.append(
            Probe(
                id=probe_id,
                identity=_field(item, "identity", where, str, True),
                probe_set=_field(item, "probe_set", where, str, False) or "+".join(modalities),
                lq_size=_field(item, "lq_size", where, int, False),
                groups=groups,
                **values,
                **extras,
            )
        )
    distractors = data.get("distractors") or []
    if not isinstance(distractors, list) or not all(isinstance(d, str) for d in distractors):
        raise ManifestError(f'{source}: "distractors" must be a list of folder paths')
    return Manifest(
        name=name,
        root=root,
        gallery=tuple(gallery),
        probes=tuple(probes),
        distractors=tuple(distractors),
        description=_field(data, "description", source, str, False) or "",
        source=source,
        split=_split_field(data, source),
    )


def _split_field(data: Mapping[str, Any], source: str) -> dict[str, str] | None:
    split = data.get("split")
    if split is None:
        return None
    if not isinstance(split, dict) or not all(isinstance(v, str) for v in split.values()):
        raise ManifestError(
            f'{source}: "split" must map keys (name, fingerprint) to text, got {split!r}'
        )
    return dict(split)


def load_manifest(path: str | Path) -> Manifest:
    """Read a manifest file and validate it (files, identities, non-empty gallery)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: benchmark manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read benchmark manifest: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON: {exc}") from None
    return parse_manifest(data, base=path.parent, source=str(path)).validate()
