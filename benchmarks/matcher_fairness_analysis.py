"""Issue 21: why the "medium" skin-tone group fails, measured on training data only.

    python benchmarks/matcher_fairness_analysis.py --data ../shared/data \\
        --cache out/matcher-cache --matchers out/matcher-person-balanced-v3 \\
        out/matcher-person-v3 out/matcher-person-v3-s1 out/matcher-person-v3-s2 \\
        --out benchmarks/results/matcher_fairness_analysis.json [--sheet out/fairness]

Reads the FS2K *training* pairs (``facefit.datasets.splits.fs2k_training``; the
development and calibration pairs are never read) and, per FS2K subset (``photo1``,
``photo2``, ``photo3``: the id prefix) and apparent skin-tone group (light / medium /
dark, as ``facefit eval`` bins it):

- counts, over all training pairs and over each matcher's validation slice (the
  persons ``facefit.matcher.train.split_validation`` holds out with the matcher's seed);
- image statistics of the aligned crops the network sees: photo brightness (mean L*),
  contrast (std L*), colour cast (mean a*, b*; grey-world cast = spread of the channel
  means over their mean), saturation; sketch brightness, contrast, ink fraction (grey
  < 100) and FS2K's sketch ``style`` code; and how the skin-tone bin moves when the
  whole photo is grey-world balanced before its skin point is sampled;
- sketch → photo rank-1 at person level per subset and group: SFace on all training
  pairs (it never trained on them), and each matcher on its own validation slice, with
  the photos as they are, grey-world balanced, and in grey (a photometric sensitivity
  test: inference only, nothing is trained).

``--sheet DIR`` also writes contact sheets of training photo/sketch crops per subset and
group (dataset images: keep them out of git).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

SUBSETS = ("photo1", "photo2", "photo3")
TONES = ("light", "medium", "dark")


def subset_of(pair_id: str) -> str:
    """FS2K's subset of a pair id (``photo1_0110`` → ``photo1``)."""
    return pair_id.rsplit("/", 1)[-1].split("_", 1)[0]


def grey_world(images: np.ndarray) -> np.ndarray:
    """Grey-world white balance of ``(..., H, W, 3)`` uint8 RGB: every channel's mean
    scaled to the image's mean grey (per image)."""
    x = images.astype(np.float32)
    means = x.mean(axis=(-3, -2), keepdims=True)
    gains = means.mean(axis=-1, keepdims=True) / np.maximum(means, 1.0)
    return np.clip(x * gains + 0.5, 0, 255).astype(np.uint8)


def to_grey(images: np.ndarray) -> np.ndarray:
    """``(..., H, W, 3)`` uint8 RGB as grey (BT.601 luma), three equal channels."""
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(luma + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def photo_stats(crops: np.ndarray) -> dict[str, np.ndarray]:
    """Per crop: L* mean / std, a* and b* means, grey-world cast, HSV saturation."""
    import cv2

    out: dict[str, list[float]] = {k: [] for k in ("L", "L_std", "a", "b", "cast", "sat")}
    for crop in crops:
        lab = cv2.cvtColor(crop.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        means = crop.reshape(-1, 3).astype(np.float64).mean(0)
        hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
        out["L"].append(float(lab[..., 0].mean()))
        out["L_std"].append(float(lab[..., 0].std()))
        out["a"].append(float(lab[..., 1].mean()))
        out["b"].append(float(lab[..., 2].mean()))
        out["cast"].append(float(means.std() / max(means.mean(), 1e-6)))
        out["sat"].append(float(hsv[..., 1].mean() / 255.0))
    return {k: np.asarray(v) for k, v in out.items()}


def sketch_stats(crops: np.ndarray) -> dict[str, np.ndarray]:
    """Per crop: grey mean / std and ink fraction (grey < 100)."""
    grey = to_grey(crops)[..., 0].astype(np.float64)
    return {
        "grey": grey.mean(axis=(1, 2)),
        "grey_std": grey.std(axis=(1, 2)),
        "ink": (grey < 100).mean(axis=(1, 2)),
    }


def skin_bins(records: Sequence[dict], folder: Path) -> tuple[list[str], list[str], list[float]]:
    """Each record's skin bin as ``facefit eval`` takes it, the bin after grey-world
    balancing the whole photo, and the raw sample's ITA (degrees)."""
    from facefit.datasets.attributes import SKIN_TONE_BINS, _lab, _sample_skin, skin_tone_name
    from facefit.imaging.images import load_image

    raw, balanced, ita = [], [], []
    for record in records:
        photo = load_image(folder / record["photo"])
        point = record.get("skin_color")
        sample = _sample_skin(photo, point, record["id"]) if point is not None else None
        if sample is None:
            raw.append("unknown")
            balanced.append("unknown")
            ita.append(float("nan"))
            continue
        raw.append(SKIN_TONE_BINS[skin_tone_name(sample)])
        after = _sample_skin(grey_world(photo), point, record["id"])
        balanced.append(SKIN_TONE_BINS[skin_tone_name(after)])
        lightness, _, b = _lab(sample)
        ita.append(float(np.degrees(np.arctan2(lightness - 50.0, b))))
    return raw, balanced, ita


def onnx_embedder(path: Path | bytes, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """``(N, S, S, 3)`` uint8 crops → embeddings with an ONNX face encoder."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = str(path) if isinstance(path, Path) else path
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def embed(crops: np.ndarray) -> np.ndarray:
        x = crops.transpose(0, 3, 1, 2).astype(np.float32)
        return np.concatenate(
            [session.run(None, {name: x[i : i + 32]})[0] for i in range(0, len(x), 32)]
        )

    return embed


def hits_by(ranks: np.ndarray, keys: Sequence[str]) -> dict[str, list[int]]:
    """``{key: [rank-1 hits, n]}`` for every key value, and ``all``."""
    out: dict[str, list[int]] = {"all": [int((ranks == 1).sum()), len(ranks)]}
    for key in sorted(set(keys)):
        mask = np.asarray(keys) == key
        out[key] = [int((ranks[mask] == 1).sum()), int(mask.sum())]
    return out


def group_keys(subsets: Sequence[str], tones: Sequence[str]) -> list[list[str]]:
    """Per pair: its subset, its tone and ``tone/subset`` (each a key of :func:`hits_by`)."""
    return [[s, t, f"{t}/{s}"] for s, t in zip(subsets, tones)]


def hits_by_groups(
    ranks: np.ndarray,
    subsets: Sequence[str],
    tones: Sequence[str],
    styles: Sequence[str] | None = None,
) -> dict:
    """:func:`hits_by` over subsets, tones and their cells together; with ``styles``
    (FS2K's sketch style codes) also over ``style<code>/<subset>`` and
    ``<tone>/style<code>/<subset>``."""
    out: dict[str, list[int]] = {}
    for column in zip(*group_keys(subsets, tones)):
        out.update(hits_by(ranks, column))
    if styles is not None:
        out.update(hits_by(ranks, [f"style{c}/{s}" for c, s in zip(styles, subsets)]))
        cells = [f"{t}/style{c}/{s}" for t, c, s in zip(tones, styles, subsets)]
        out.update(hits_by(ranks, cells))
    return dict(sorted(out.items()))


def summarise(values: dict[str, np.ndarray], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean of each statistic per key value."""
    out = {}
    for key in sorted(set(keys)):
        mask = np.asarray(keys) == key
        out[key] = {k: round(float(np.nanmean(v[mask])), 4) for k, v in values.items()}
        out[key]["n"] = int(mask.sum())
    return out


def contact_sheet(path: Path, photos: np.ndarray, sketches: np.ndarray, columns: int = 12) -> None:
    """Photo over sketch, ``columns`` pairs a row, as one PNG."""
    import cv2

    if not len(photos):
        return
    tiles = [np.concatenate([p, s], axis=0) for p, s in zip(photos, sketches)]
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def main() -> None:
    from facefit.datasets.persons import load_persons
    from facefit.datasets.splits import FS2K_DIR, load_fs2k_annotations
    from facefit.imaging.faces import FaceEmbedder
    from facefit.matcher.data import align_pairs, fs2k_training_pairs
    from facefit.matcher.model import load_base
    from facefit.matcher.train import sketch_ranks, split_validation
    from facefit.registry import Registry

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=None, help="train-matcher's crop cache")
    parser.add_argument("--matchers", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sheet", type=Path, default=None, help="contact sheets here (not git)")
    args = parser.parse_args()
    started = time.time()

    persons = load_persons(args.data)
    pairs = fs2k_training_pairs(args.data, persons)
    embedder = FaceEmbedder.from_registry(Registry.load(), detector="yunet")
    data = align_pairs(pairs, embedder, cache_dir=args.cache)
    ids = [p.key.split("/", 1)[1] for p in data.pairs]
    records = {r["id"]: r for r in load_fs2k_annotations(args.data)}
    subsets = [subset_of(i) for i in ids]
    tones = [p.skin_tone or "unknown" for p in data.pairs]
    genders = [p.gender or "unknown" for p in data.pairs]
    styles = [str(records[i].get("style", "?")) for i in ids]
    labels = [p.label for p in data.pairs]
    cells = [f"{t}/{s}" for s, t in zip(subsets, tones)]

    result: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()}, CPU",
        "pairs": len(data),
        "counts": {
            "subset": {s: subsets.count(s) for s in SUBSETS},
            "tone": {t: tones.count(t) for t in sorted(set(tones))},
            "tone/subset": {c: cells.count(c) for c in sorted(set(cells))},
            "gender/subset": {
                f"{g}/{s}": sum(1 for a, b in zip(genders, subsets) if (a, b) == (g, s))
                for g in ("female", "male")
                for s in SUBSETS
            },
            "sketch style/subset": {
                f"style{st}/{s}": sum(1 for a, b in zip(styles, subsets) if (a, b) == (st, s))
                for st in sorted(set(styles))
                for s in SUBSETS
            },
        },
    }

    # image statistics of the crops the network sees
    stats = {
        **photo_stats(data.photos),
        **{f"sketch_{k}": v for k, v in sketch_stats(data.sketches).items()},
    }
    raw_bins, balanced_bins, ita = skin_bins([records[i] for i in ids], args.data / FS2K_DIR)
    assert raw_bins == tones, "the skin bins here must be the matcher's own"
    stats["ita"] = np.asarray(ita)
    result["stats"] = {
        "subset": summarise(stats, subsets),
        "tone": summarise(stats, tones),
        "tone/subset": summarise(stats, cells),
    }
    moves: dict[str, int] = {}
    for s, a, b in zip(subsets, raw_bins, balanced_bins):
        key = f"{s}: {a} -> {b}"
        moves[key] = moves.get(key, 0) + 1
    result["grey_world_bins"] = dict(sorted(moves.items()))
    result["grey_world_tone_counts"] = {
        s: {t: sum(1 for a, b in zip(subsets, balanced_bins) if (a, b) == (s, t)) for t in TONES}
        for s in SUBSETS
    }

    # SFace (never trained on FS2K) over all training pairs, person level
    variants = {
        "as is": lambda x: x,
        "grey-world photos": grey_world,
        "grey photos": to_grey,
    }
    sface = onnx_embedder(load_base().SerializeToString())
    sketch_emb = sface(data.sketches)
    sface_photos = {name: sface(change(data.photos)) for name, change in variants.items()}
    sface_rows = {}
    for name in variants:
        ranks = sketch_ranks(sketch_emb, sface_photos[name], labels)
        sface_rows[name] = hits_by_groups(ranks, subsets, tones, styles)
    result["sface_all_training_pairs"] = sface_rows

    # each matcher (and SFace) on its own validation slice
    slices = {}
    for model in args.matchers:
        config = json.loads((model / "config.json").read_text())
        seed, count = config["settings"]["seed"], config["settings"]["val_pairs"]
        _, val = split_validation(data, count, seed)
        v_sub = [subsets[i] for i in val]
        v_tone = [tones[i] for i in val]
        v_labels = [labels[i] for i in val]
        v_styles = [styles[i] for i in val]
        entry: dict = {
            "seed": seed,
            "settings": {k: config["settings"][k] for k in ("classes", "balance", "seed")},
            "pairs": len(val),
            "counts": {
                c: [f"{t}/{s}" for s, t in zip(v_sub, v_tone)].count(c)
                for c in sorted({f"{t}/{s}" for s, t in zip(v_sub, v_tone)})
            },
            "config_val_best_rank1": config["metrics"]["val_best"].get("val_rank1"),
        }
        matcher = onnx_embedder(model / "model.onnx")
        for encoder_name in ("sface", "matcher"):
            # SFace's embeddings of every training crop are already there
            sk = sketch_emb[val] if encoder_name == "sface" else matcher(data.sketches[val])
            for name, change in variants.items():
                if encoder_name == "sface":
                    photos = sface_photos[name][val]
                else:
                    photos = matcher(change(data.photos[val]))
                ranks = sketch_ranks(sk, photos, v_labels)
                entry[f"{encoder_name} · {name}"] = hits_by_groups(ranks, v_sub, v_tone, v_styles)
                entry[f"{encoder_name} · {name} · mrr"] = round(float((1.0 / ranks).mean()), 4)
        slices[str(model)] = entry
        print(model, entry["matcher · as is"], flush=True)
    result["validation_slices"] = slices

    if args.sheet is not None:
        for cell in sorted(set(cells)):
            rows = [i for i, c in enumerate(cells) if c == cell][:48]
            contact_sheet(
                args.sheet / f"train_{cell.replace('/', '_')}.png",
                data.photos[rows],
                data.sketches[rows],
            )
    result["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("counts", "grey_world_bins")}, indent=1))


if __name__ == "__main__":
    main()
