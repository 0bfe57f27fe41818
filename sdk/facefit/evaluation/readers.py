"""Turn data folders in the supported formats into benchmark manifests.

- **FS2K format**: a folder with ``annotations.json`` (per pair: ``id``, ``photo``,
  ``sketch``, attributes, optionally ``person``). Each pair is one identity whose photo
  is enrolled in the gallery; probes are its sketch, low-quality copies of that photo,
  its attribute sentence, or any combination. Pairs with the same ``person`` show one
  person, and are one identity at person level.
- **CelebA format**: a folder with ``faces/`` and ``identities.csv`` (``image``,
  ``celeba_identity``, ``has_attrs``, the 40 attributes, optionally ``person``). The
  first ``gallery_per_identity`` photos of each identity (by file name) are enrolled;
  every other photo is a probe (photo → photo), or the source of a low-quality
  probe, or — where attributes are known — of a text probe. Identities with the same
  ``person`` are one at person level.

A probe set is named by its parts joined with ``+``: ``sketch``, ``photo``, ``text``
and ``lq8`` / ``lq16`` / ``lq32`` (a low-quality copy made from the true photo at
that size, the IdentiFace protocol; marked as made in the manifest and the report),
e.g. ``sketch+text+lq8``. :func:`dev_benchmarks` builds the development split
fixed in :mod:`facefit.datasets.splits`, with the persons of :mod:`facefit.datasets.persons`.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from facefit.evaluation.manifest import (
    LQ_SIZES,
    GalleryImage,
    Manifest,
    ManifestError,
    Probe,
    load_manifest,
)

__all__ = [
    "CELEBA_PROBE_SETS",
    "FS2K_PROBE_SETS",
    "detect_format",
    "dev_benchmarks",
    "parse_probe_set",
    "read_benchmark",
    "read_celeba",
    "read_fs2k",
]

log = logging.getLogger(__name__)

FS2K_PROBE_SETS = ("sketch", "lq16", "lq8", "text")
"""What :func:`read_fs2k` makes by default."""
CELEBA_PROBE_SETS = ("photo",)
"""What :func:`read_celeba` makes by default."""
PARTS = ("sketch", "photo", "text", *(f"lq{s}" for s in LQ_SIZES))


def parse_probe_set(name: str) -> dict[str, Any]:
    """``"sketch+lq8"`` → ``{"sketch": True, "lq": 8}``; a clear error for unknown parts."""
    parts = [p.strip() for p in name.split("+") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if not parts or unknown:
        raise ManifestError(
            f"unknown probe set {name!r}: use parts {', '.join(PARTS)} joined by '+'"
        )
    lq = [int(p[2:]) for p in parts if p.startswith("lq")]
    if len(lq) > 1:
        raise ManifestError(f"probe set {name!r}: at most one low-quality size")
    return {
        "sketch": "sketch" in parts,
        "photo": "photo" in parts,
        "text": "text" in parts,
        "lq": lq[0] if lq else None,
    }


def _check_sets(probe_sets: Sequence[str], unsupported: str, why: str, fmt: str) -> list:
    specs = []
    for name in probe_sets:
        spec = parse_probe_set(name)
        if spec[unsupported]:
            raise ManifestError(f"probe set {name!r} cannot be made from a {fmt} folder: {why}")
        specs.append((name, spec))
    if not specs:
        raise ManifestError("no probe sets asked for")
    return specs


# -- FS2K ----------------------------------------------------------------------------------


def _fs2k_details(folder: Path, pair: Mapping[str, Any], text: bool) -> tuple[dict, str | None]:
    """Group labels and (when asked) the attribute sentence of one FS2K pair.

    FS2K's ``skin_color`` is the pixel where skin was sampled, so both need the photo.
    The skin tone is the *apparent* one under the photo's lighting, not a skin type.
    """
    from facefit.datasets.attributes import SKIN_TONE_BINS, fs2k_attributes, fs2k_sentence
    from facefit.imaging.images import load_image

    photo = load_image(folder / pair["photo"]) if (folder / pair["photo"]).is_file() else None
    attrs = fs2k_attributes(pair, photo)
    groups = {}
    if "gender" in attrs:
        groups["gender"] = attrs["gender"]
    if "skin_tone" in attrs:
        groups["skin_tone"] = SKIN_TONE_BINS[attrs["skin_tone"]]
    return groups, (fs2k_sentence(pair, photo) if text else None)


def read_fs2k(
    folder: str | Path,
    *,
    probe_sets: Sequence[str] = FS2K_PROBE_SETS,
    ids: Iterable[str] | None = None,
    gallery_only: Iterable[str] = (),
    name: str | None = None,
    persons: Callable[[str], str] | None = None,
    split: Mapping[str, str] | None = None,
) -> Manifest:
    """An FS2K-format folder → a manifest; ``ids`` limits the pairs (e.g. the dev split).

    The photos of the ``gallery_only`` pairs are enrolled too, without probes: they
    make the gallery as large as a test set's without using their sketches.
    ``persons`` maps a pair id to its person (e.g. ``load_persons(data).fs2k_person``),
    in place of the pairs' own ``person`` fields; ``split`` names the split for the report.
    """
    folder = Path(folder)
    annotations = _read_json(folder / "annotations.json")
    if not isinstance(annotations, list):
        raise ManifestError(f"{folder / 'annotations.json'}: expected a list of pairs")
    specs = _check_sets(
        probe_sets, "photo", "each FS2K identity has one photo, and it is the gallery", "FS2K"
    )
    for i, pair in enumerate(annotations):
        for key in ("id", "photo", "sketch"):
            if not isinstance(pair, dict) or not isinstance(pair.get(key), str):
                raise ManifestError(f"{folder / 'annotations.json'}: pair {i} has no {key!r}")
        _check_person(pair.get("person"), f"{folder / 'annotations.json'}: pair {i}")
    pairs = _pick(annotations, ids, folder)
    extra = _pick(annotations, gallery_only, folder) if gallery_only else []
    if {a["id"] for a in pairs} & {a["id"] for a in extra}:
        raise ManifestError("read_fs2k: a pair cannot be both a probe and gallery-only")

    def photo(pair: Mapping[str, Any]) -> GalleryImage:
        person = persons(pair["id"]) if persons is not None else pair.get("person")
        person = None if person is None else str(person)
        return GalleryImage(pair["id"], pair["id"], pair["photo"], person)

    gallery = [photo(a) for a in extra]
    probes = []
    for pair in pairs:
        pid = pair["id"]
        gallery.append(photo(pair))
        groups, text = _fs2k_details(folder, pair, any(s["text"] for _, s in specs))
        for set_name, spec in specs:
            probes.append(
                Probe(
                    id=f"{pid}/{set_name}",
                    identity=pid,
                    probe_set=set_name,
                    sketch=pair["sketch"] if spec["sketch"] else None,
                    lq=pair["photo"] if spec["lq"] else None,
                    lq_size=spec["lq"],
                    text=text if spec["text"] else None,
                    true_photo=pair["photo"],
                    groups=groups,
                )
            )
    return Manifest(
        name=name or folder.name,
        root=folder,
        gallery=tuple(gallery),
        probes=tuple(probes),
        description=f"FS2K format: {len(pairs)} pairs, gallery = their photos"
        + (f" + the photos of {len(extra)} other pairs" if extra else ""),
        source=str(folder),
        split=split,
    ).validate()


def _check_person(value: Any, where: str) -> None:
    """A declared person is text or a whole number (written as text)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise ManifestError(
            f"{where}: 'person' must be a non-empty name (text), got {value!r}; "
            "pairs with the same person are one identity at person level"
        )


def _pick(annotations: list[dict], ids: Iterable[str] | None, folder: Path) -> list[dict]:
    if ids is None:
        return list(annotations)
    wanted = set(ids)
    pairs = [a for a in annotations if a["id"] in wanted]
    if len(pairs) != len(wanted):
        missing = sorted(wanted - {a["id"] for a in pairs})
        raise ManifestError(
            f"{folder}: {len(missing)} requested pair(s) not in annotations.json, "
            f"e.g. {', '.join(missing[:3])}"
        )
    return pairs


# -- CelebA --------------------------------------------------------------------------------


def _celeba_groups(rows: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Gender and age of one identity: the majority over its photos with attributes.

    CelebA labels ~10% of photos; gender and age group belong to the person, so
    every probe of the identity gets the majority label (ties leave it unknown).
    """
    groups = {}
    for column, name, labels in (
        ("Male", "gender", ("male", "female")),
        ("Young", "age", ("young", "older")),
    ):
        votes = [r.get(column) for r in rows if r.get("has_attrs") == "1"]
        yes, no = votes.count("1"), votes.count("-1")
        if yes != no:
            groups[name] = labels[0] if yes > no else labels[1]
    return groups


def _celeba_text(row: Mapping[str, str]) -> str | None:
    if row.get("has_attrs") != "1":
        return None
    from facefit.datasets.attributes import celeba_sentence

    return celeba_sentence(row)


def read_celeba(
    folder: str | Path,
    *,
    probe_sets: Sequence[str] = CELEBA_PROBE_SETS,
    images: Iterable[str] | None = None,
    gallery_per_identity: int = 1,
    name: str | None = None,
    persons: Callable[[str], str] | None = None,
    split: Mapping[str, str] | None = None,
) -> Manifest:
    """A CelebA-format folder → a manifest; ``images`` limits the photos (e.g. the dev split).

    Identities with fewer than ``gallery_per_identity + 1`` photos are enrolled
    but give no probe. Text probes are made only for photos with known attributes.
    ``persons`` maps an identity to its person (e.g. ``load_persons(data).celeba_person``),
    in place of the CSV's ``person`` column; ``split`` names the split for the report.
    """
    folder = Path(folder)
    if gallery_per_identity < 1:
        raise ManifestError("gallery_per_identity must be at least 1")
    specs = _check_sets(probe_sets, "sketch", "CelebA has no sketches", "CelebA")
    rows = _read_csv(folder / "identities.csv")
    wanted = None if images is None else set(images)
    by_identity: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if wanted is None or row["image"] in wanted:
            by_identity.setdefault(row["celeba_identity"], []).append(row)
    if wanted is not None and sum(map(len, by_identity.values())) != len(wanted):
        raise ManifestError(f"{folder}: some requested images are not in identities.csv")
    gallery, probes = [], []
    for identity in sorted(by_identity, key=lambda s: (len(s), s)):
        photos = sorted(by_identity[identity], key=lambda r: r["image"])
        enrolled, rest = photos[:gallery_per_identity], photos[gallery_per_identity:]
        person = persons(identity) if persons is not None else _celeba_person(photos, folder)
        gallery += [
            GalleryImage(r["image"], identity, f"faces/{r['image']}", person) for r in enrolled
        ]
        groups = _celeba_groups(photos)
        for row in rest:
            path = f"faces/{row['image']}"
            text = _celeba_text(row) if any(s["text"] for _, s in specs) else None
            for set_name, spec in specs:
                if spec["text"] and text is None:
                    continue
                probes.append(
                    Probe(
                        id=f"{row['image']}/{set_name}",
                        identity=identity,
                        probe_set=set_name,
                        reference=path if spec["photo"] else None,
                        lq=path if spec["lq"] else None,
                        lq_size=spec["lq"],
                        text=text if spec["text"] else None,
                        true_photo=path,
                        groups=groups,
                    )
                )
    return Manifest(
        name=name or folder.name,
        root=folder,
        gallery=tuple(gallery),
        probes=tuple(probes),
        description=(
            f"CelebA format: {len(by_identity)} identities, first {gallery_per_identity} "
            "photo(s) of each enrolled, the others are probes"
        ),
        source=str(folder),
        split=split,
    ).validate()


def _celeba_person(rows: Sequence[Mapping[str, str]], folder: Path) -> str | None:
    """The ``person`` column of one identity's rows: one value, or none at all."""
    values = {(r.get("person") or "").strip() for r in rows}
    if len(values) > 1:
        shown = ", ".join(repr(v) if v else "empty" for v in sorted(values))
        raise ManifestError(
            f"{folder / 'identities.csv'}: identity {rows[0]['celeba_identity']!r} has "
            f"photos of different persons ({shown}); an identity is one person"
        )
    value = values.pop()
    return value or None


# -- any format ----------------------------------------------------------------------------


def detect_format(path: str | Path) -> str:
    """``"manifest"``, ``"fs2k"`` or ``"celeba"``; a clear error otherwise."""
    path = Path(path)
    if path.is_file():
        return "manifest"
    if (path / "annotations.json").is_file():
        return "fs2k"
    if (path / "identities.csv").is_file() and (path / "faces").is_dir():
        return "celeba"
    if not path.exists():
        raise ManifestError(f"{path}: benchmark not found")
    raise ManifestError(
        f"{path}: not a benchmark: expected a manifest JSON file, an FS2K-format folder "
        "(annotations.json) or a CelebA-format folder (faces/ and identities.csv)"
    )


def read_benchmark(path: str | Path, probe_sets: Sequence[str] | None = None) -> Manifest:
    """A manifest file or a data folder in a supported format → a validated manifest.

    ``probe_sets`` chooses the probe sets a folder is turned into (a manifest
    file's own probe sets are filtered to them).
    """
    fmt = detect_format(path)
    if fmt == "manifest":
        manifest = load_manifest(path)
        return manifest.select(probe_sets) if probe_sets else manifest
    reader = read_fs2k if fmt == "fs2k" else read_celeba
    return reader(path, probe_sets=probe_sets) if probe_sets else reader(path)


def dev_benchmarks(
    data_dir: str | Path,
    *,
    fs2k_probe_sets: Sequence[str] = FS2K_PROBE_SETS,
    celeba_probe_sets: Sequence[str] = CELEBA_PROBE_SETS,
    large_gallery: bool = False,
) -> list[Manifest]:
    """The development split of a data folder (``fs2k-train/``, ``celeba-subset/``).

    Which items are held out is decided by :mod:`facefit.datasets.splits` alone. Every pair and
    identity gets its person from :func:`facefit.datasets.persons.load_persons` (the committed
    grouping, checked against the data), so the harness reports person level too; each
    benchmark carries its split's fingerprint. With
    ``large_gallery``, a third benchmark ``fs2k-dev-large-gallery`` matches the same
    FS2K probes against every FS2K photo (the training photos as extra identities):
    a gallery the size of FS2K's test set, so rank-1 can be compared with figures
    measured there. Only the training *photos* are used, never their sketches.
    """
    from facefit.datasets import splits
    from facefit.datasets.persons import load_persons

    data_dir = Path(data_dir)
    persons = load_persons(data_dir)
    out = []
    if fs2k_probe_sets:
        split = splits.fs2k_split(data_dir)
        common = {
            "probe_sets": fs2k_probe_sets,
            "ids": split.dev,
            "persons": persons.fs2k_person,
            "split": {"name": "dev", "data": "fs2k", "fingerprint": split.fingerprint},
        }
        folder = data_dir / splits.FS2K_DIR
        out.append(read_fs2k(folder, name="fs2k-dev", **common))
        if large_gallery:
            out.append(
                read_fs2k(folder, gallery_only=split.train, name="fs2k-dev-large-gallery", **common)
            )
    if celeba_probe_sets:
        split = splits.celeba_split(data_dir)
        out.append(
            read_celeba(
                data_dir / splits.CELEBA_DIR,
                probe_sets=celeba_probe_sets,
                images=split.dev,
                name="celeba-dev",
                persons=persons.celeba_person,
                split={"name": "dev", "data": "celeba", "fingerprint": split.fingerprint},
            )
        )
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise ManifestError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    for column in ("image", "celeba_identity"):
        if rows and column not in rows[0]:
            raise ManifestError(f"{path}: no {column!r} column")
    return rows
