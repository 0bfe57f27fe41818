"""Group the FS2K pairs and CelebA identities of ``../shared/data`` into persons.

FS2K gives every photo its own id, but many of its photos show the same celebrity,
and some of those celebrities are CelebA identities too. This script embeds every
photo with two independent recognizers, SFace and dlib, and joins two items into
one person only where **both** say "same person":

- two FS2K photos: SFace cosine > :data:`SFACE_SAME` and dlib cosine > :data:`DLIB_SAME`;
- a CelebA identity and an FS2K photo: at least :data:`CELEBA_MIN_PHOTOS` of the
  identity's photos pass the same rule against that FS2K photo (one photo alone
  could be a look-alike or a label error);
- persons are the connected components of those links (union-find).

The thresholds are justified on the CelebA *training* identities, whose labels are
known: the script prints and records each recognizer's false-match rate (different
labels above the threshold) and true-match rate at its threshold, and the rate at
which both agree.

Writes ``sdk/facefit/datasets/persons.json`` (item → person, the rule, the measured rates and
the sha256 of the inputs) and ``out/persons_borderline.png`` (the linked pairs closest
to a threshold, for a person to check the rule; not committed: it shows CelebA photos
and FS2K photos outside the demo, which the data terms keep out of the project). Embeddings are
cached under ``~/.cache/facefit/persons-cache`` so a rerun is quick. The result is
deterministic: the same inputs give the same persons (tests/test_persons.py).

    python scripts/group_persons.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from facefit.datasets.persons import (
    CELEBA_MIN_PHOTOS,
    DLIB_SAME,
    PERSONS_FILE,
    SFACE_SAME,
    group_persons,
    input_fingerprints,
)
from facefit.datasets.splits import CELEBA_DIR, FS2K_DIR, load_celeba_rows, load_fs2k_annotations

log = logging.getLogger("group_persons")

ENCODERS = ("sface", "dlib")


def _cache_dir() -> Path:
    from facefit.weights import cache_dir

    path = cache_dir().parent / "persons-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def embed_all(paths: list[Path], encoder: str, key: str) -> np.ndarray:
    """Unit embeddings of every photo (NaN rows where no face was found), cached."""
    from facefit import Registry
    from facefit.imaging.faces import FaceEmbedder

    digest = hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:16]
    cache = _cache_dir() / f"{key}-{encoder}-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    embedder = FaceEmbedder.from_registry(Registry.load(), encoder=encoder)
    out = np.full((len(paths), embedder.dim), np.nan, dtype=np.float32)
    for i, item in enumerate(embedder.embed_files(paths, progress=True)):
        if item.ok:
            out[i] = item.vector / np.linalg.norm(item.vector)
    np.save(cache, out)
    return out


def match_rates(match: np.ndarray, labels: np.ndarray) -> dict:
    """False- and true-match rates of a pairwise "same person" matrix against known labels."""
    upper = np.triu(np.ones_like(match, dtype=bool), k=1)
    same = (labels[:, None] == labels[None, :]) & upper
    diff = (labels[:, None] != labels[None, :]) & upper
    return {
        "false_match_rate": float(match[diff].mean()),
        "false_matches": int(match[diff].sum()),
        "true_match_rate": float(match[same].mean()),
        "impostor_pairs": int(diff.sum()),
        "genuine_pairs": int(same.sum()),
    }


def rule_rates(sface: np.ndarray, dlib: np.ndarray, labels: np.ndarray) -> dict:
    """Each recognizer's rate at its threshold (over the photos it found a face in), and
    the rate where both agree (over the photos both found a face in)."""

    def single(vectors: np.ndarray, threshold: float) -> dict:
        ok = ~np.isnan(vectors[:, 0])
        v = vectors[ok]
        return {"threshold": threshold, **match_rates(v @ v.T > threshold, labels[ok])}

    ok = ~np.isnan(sface[:, 0]) & ~np.isnan(dlib[:, 0])
    s, d = sface[ok], dlib[ok]
    return {
        "sface": single(sface, SFACE_SAME),
        "dlib": single(dlib, DLIB_SAME),
        "both": match_rates((s @ s.T > SFACE_SAME) & (d @ d.T > DLIB_SAME), labels[ok]),
    }


def borderline_sheet(pairs: list[tuple[Path, Path, str]], out: Path) -> None:
    """A contact sheet of linked pairs nearest a threshold, captioned with both cosines."""
    from PIL import Image, ImageDraw

    from facefit.imaging.images import load_image, save_image

    tile, rows = 112, []
    for a, b, caption in pairs:
        row = Image.new("RGB", (2 * tile, tile + 14), "white")
        for i, path in enumerate((a, b)):
            im = Image.fromarray(load_image(path)).resize((tile, tile))
            row.paste(im, (i * tile, 0))
        ImageDraw.Draw(row).text((2, tile), caption, fill="black")
        rows.append(row)
    cols = 4
    sheet = Image.new(
        "RGB", (cols * 2 * tile + (cols - 1) * 8, -(-len(rows) // cols) * (tile + 14))
    )
    sheet.paste((255, 255, 255), (0, 0, *sheet.size))
    for i, row in enumerate(rows):
        sheet.paste(row, ((i % cols) * (2 * tile + 8), (i // cols) * (tile + 14)))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(out, np.asarray(sheet))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", type=Path)
    parser.add_argument("--out", default=PERSONS_FILE, type=Path)
    parser.add_argument("--sheet", default=Path("out/persons_borderline.png"), type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    fs2k = sorted(load_fs2k_annotations(args.data), key=lambda a: a["id"])
    fs2k_ids = [a["id"] for a in fs2k]
    fs2k_paths = [args.data / FS2K_DIR / a["photo"] for a in fs2k]
    rows = sorted(load_celeba_rows(args.data), key=lambda r: r["image"])
    celeba_paths = [args.data / CELEBA_DIR / "faces" / r["image"] for r in rows]
    celeba_ids = np.array([r["celeba_identity"] for r in rows])

    emb = {
        enc: (embed_all(fs2k_paths, enc, "fs2k"), embed_all(celeba_paths, enc, "celeba"))
        for enc in ENCODERS
    }
    from facefit.datasets.splits import celeba_split

    train = set(celeba_split(args.data).train)
    mask = np.array([r["image"] in train for r in rows])
    rates = rule_rates(emb["sface"][1][mask], emb["dlib"][1][mask], celeba_ids[mask])
    log.info("rates on CelebA training identities: %s", json.dumps(rates, indent=1))

    grouping = group_persons(
        fs2k_ids,
        (emb["sface"][0], emb["dlib"][0]),
        [str(i) for i in celeba_ids],
        (emb["sface"][1], emb["dlib"][1]),
    )
    fingerprints = input_fingerprints(args.data, with_images=True)
    payload = {
        "about": "FS2K pairs and CelebA identities of ../shared/data grouped into persons "
        "by scripts/group_persons.py: linked only where SFace and dlib both say same person",
        "rule": {
            "sface_cosine_above": SFACE_SAME,
            "dlib_cosine_above": DLIB_SAME,
            "celeba_min_photos": CELEBA_MIN_PHOTOS,
            "components": "union-find over the links",
        },
        "rates_on_celeba_training_identities": rates,
        "inputs": fingerprints,
        "no_face": grouping.no_face,
        "links": grouping.links,
        "persons": grouping.persons,
    }
    args.out.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    sizes = np.bincount(np.unique(list(grouping.persons.values()), return_counts=True)[1])
    log.info(
        "wrote %s: %d items, %d persons; persons by size: %s",
        args.out,
        len(grouping.persons),
        len(set(grouping.persons.values())),
        {k: int(v) for k, v in enumerate(sizes) if v},
    )

    paths = {f"fs2k/{i}": p for i, p in zip(fs2k_ids, fs2k_paths)}
    first_photo = {}
    for r, p in zip(rows, celeba_paths):
        first_photo.setdefault(f"celeba/{r['celeba_identity']}", p)
    paths.update(first_photo)
    near = sorted(grouping.links, key=lambda link: min(link[2] - SFACE_SAME, link[3] - DLIB_SAME))
    borderline_sheet(
        [(paths[a], paths[b], f"sface {s:.2f} dlib {d:.3f}") for a, b, s, d in near[:24]],
        args.sheet,
    )
    log.info("wrote %s", args.sheet)


if __name__ == "__main__":
    main()
