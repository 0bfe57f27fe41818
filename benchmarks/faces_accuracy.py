"""Detection and alignment quality: YuNet rates, SFace identification with two alignments.

1. YuNet detection rate on FS2K sketches and photos (all 1,058 pairs), CelebA and ORL,
   and how far sketch landmarks land from the paired photo's (FS2K sketches are traced
   over the photos, so the two should coincide): NME = mean landmark distance / eye
   distance, on the pairs where both are detected.
2. SFace on CelebA with facefit's alignment (:func:`facefit.imaging.faces.align_landmarks`) and
   with OpenCV's ``FaceRecognizerSF.alignCrop``, from the same YuNet detections and the
   same ONNX Runtime encoder (and OpenCV's own ``feature`` for reference). Split: for
   each identity the first image (by file name) is the gallery, the others are probes;
   reported on the held-out development identities (:mod:`facefit.datasets.splits`) and on all
   identities. Verification: all genuine and impostor pairs among the split's images,
   TAR at FAR, accuracy at OpenCV's published SFace cosine threshold (0.363), and the
   10-fold cross-validated best-threshold accuracy on balanced pairs (LFW style).
3. FS2K development pairs, sketch → photo with SFace: detected landmarks vs the
   framed-drawing fallback (:data:`facefit.imaging.faces.FRAMED_LANDMARKS`) for every sketch.

    python benchmarks/faces_accuracy.py [--data ../shared/data] [--out benchmarks/results/faces.json]
        [--only detection celeba_sface fs2k_dev_sketch_to_photo]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from facefit import Registry
from facefit.datasets.splits import (
    celeba_split,
    fs2k_split,
    load_celeba_rows,
    load_fs2k_annotations,
)
from facefit.evaluation.metrics import identification_metrics, tar_at_far
from facefit.imaging.faces import FaceEmbedder, align_landmarks, framed_landmarks, largest
from facefit.imaging.images import load_image
from facefit.weights import resolve

REPO = Path(__file__).resolve().parents[1]
OPENCV_SFACE_THRESHOLD = 0.363  # cosine; OpenCV zoo's published threshold for SFace


def detection_rates(embedder: FaceEmbedder, data: Path) -> dict:
    out: dict = {}
    fs2k = load_fs2k_annotations(data)
    nme = []
    found = {"sketch": 0, "photo": 0}
    for record in fs2k:
        lms = {}
        for kind in ("sketch", "photo"):
            detections = embedder.detect(load_image(data / "fs2k-train" / record[kind]))
            if detections:
                found[kind] += 1
                lms[kind] = largest(detections).landmarks
        if len(lms) == 2:
            eyes = np.linalg.norm(lms["photo"][0] - lms["photo"][1])
            nme.append(np.linalg.norm(lms["sketch"] - lms["photo"], axis=1).mean() / eyes)
    for kind in ("sketch", "photo"):
        out[f"fs2k_{kind}"] = {
            "found": found[kind],
            "images": len(fs2k),
            "rate": found[kind] / len(fs2k),
        }
    nme = np.array(nme)
    out["fs2k_sketch_vs_photo_landmarks"] = {
        "pairs": len(nme),
        "nme_mean": float(nme.mean()),
        "nme_median": float(np.median(nme)),
        "share_nme_below_0.1": float((nme < 0.1).mean()),
    }
    orl = sorted((data / "orl").glob("s*/*.pgm"))
    hits = sum(bool(embedder.detect(load_image(p))) for p in orl)
    out["orl"] = {"found": hits, "images": len(orl), "rate": hits / max(1, len(orl))}
    return out


def celeba_embeddings(embedder: FaceEmbedder, data: Path) -> dict:
    """Per image: identity, ours / alignCrop embeddings (ONNX Runtime), OpenCV's feature."""
    recognizer = cv2.FaceRecognizerSF.create(str(resolve("sface")), "")
    rows = load_celeba_rows(data)
    names, ids, ours, theirs, opencv = [], [], [], [], []
    missed = 0
    for row in rows:
        image = load_image(data / "celeba-subset" / "faces" / row["image"])
        detections = embedder.detect(image)
        if not detections:
            missed += 1
            continue
        best = largest(detections)
        face_row = np.array([[*best.box, *best.landmarks.ravel(), best.score]], np.float32)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        crop_cv = recognizer.alignCrop(bgr, face_row)
        opencv.append(recognizer.feature(crop_cv).ravel())
        theirs.append(cv2.cvtColor(crop_cv, cv2.COLOR_BGR2RGB))
        ours.append(align_landmarks(image, best.landmarks, 112))
        names.append(row["image"])
        ids.append(row["celeba_identity"])
    return {
        "names": np.array(names),
        "ids": np.array(ids),
        "ours": embedder.embed_aligned(np.stack(ours)),
        "aligncrop": embedder.embed_aligned(np.stack(theirs)),
        "opencv": _normalize(np.stack(opencv)),
        "missed": missed,
        "images": len(rows),
    }


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def identification(vectors: np.ndarray, names: np.ndarray, ids: np.ndarray) -> dict:
    order = np.lexsort((names, ids))
    gallery_of: dict[str, int] = {}
    for i in order:
        gallery_of.setdefault(ids[i], i)
    identities = sorted(gallery_of)
    column = {k: j for j, k in enumerate(identities)}
    gallery = vectors[[gallery_of[k] for k in identities]]
    probes = np.array([i for i in range(len(ids)) if gallery_of[ids[i]] != i])
    scores = vectors[probes] @ gallery.T
    metrics = identification_metrics(scores, np.array([column[k] for k in ids[probes]]))
    return {k: v for k, v in metrics.to_json().items() if k not in ("cmc", "groups")}


def verification(vectors: np.ndarray, ids: np.ndarray, seed: int = 0) -> dict:
    sim = vectors @ vectors.T
    upper = np.triu_indices(len(ids), 1)
    same = ids[upper[0]] == ids[upper[1]]
    scores = sim[upper]
    genuine, impostor = scores[same], scores[~same]
    rng = np.random.default_rng(seed)
    balanced_impostor = rng.choice(impostor, size=len(genuine), replace=False)
    pair_scores = np.concatenate([genuine, balanced_impostor])
    labels = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(genuine), bool)])
    folds = rng.permutation(len(labels)) % 10
    accuracies = []
    for fold in range(10):
        train, test = folds != fold, folds == fold
        threshold = _best_threshold(pair_scores[train], labels[train])
        accuracies.append(((pair_scores[test] > threshold) == labels[test]).mean())
    fixed = ((pair_scores > OPENCV_SFACE_THRESHOLD) == labels).mean()
    return {
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "accuracy_10fold": float(np.mean(accuracies)),
        "accuracy_10fold_std": float(np.std(accuracies)),
        "accuracy_at_0.363": float(fixed),
        "tar_at_far_1e-3": tar_at_far(genuine, impostor, 1e-3),
        "tar_at_far_1e-4": tar_at_far(genuine, impostor, 1e-4),
    }


def _best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold t maximising accuracy of ``score > t`` (one sorted sweep)."""
    order = np.argsort(scores)
    sorted_scores, sorted_labels = scores[order], labels[order]
    # threshold just at sorted_scores[k]: pairs 0..k rejected, k+1.. accepted
    rejected_negatives = np.cumsum(~sorted_labels)
    accepted_positives = sorted_labels.sum() - np.cumsum(sorted_labels)
    k = int(np.argmax(rejected_negatives + accepted_positives))
    return float(sorted_scores[k])


def celeba_report(emb: dict, data: Path) -> dict:
    dev_names = set(celeba_split(data).dev)
    subsets = {
        "dev": np.array([n in dev_names for n in emb["names"]]),
        "all": np.ones(len(emb["names"]), bool),
    }
    report: dict = {"images": emb["images"], "no_face_found": emb["missed"]}
    for subset, mask in subsets.items():
        names, ids = emb["names"][mask], emb["ids"][mask]
        report[subset] = {
            "images": int(mask.sum()),
            "identities": len(set(ids)),
            **{
                method: {
                    "identification": identification(emb[method][mask], names, ids),
                    "verification": verification(emb[method][mask], ids),
                }
                for method in ("ours", "aligncrop", "opencv")
            },
        }
    both = (emb["ours"] * emb["aligncrop"]).sum(1)
    report["cosine_ours_vs_aligncrop"] = {"mean": float(both.mean()), "min": float(both.min())}
    return report


def sketch_fallback_report(embedder: FaceEmbedder, data: Path) -> dict:
    dev = set(fs2k_split(data).dev)
    records = [r for r in load_fs2k_annotations(data) if r["id"] in dev]
    photos, detected, framed = [], [], []
    how: dict[str, int] = {}
    for record in records:
        photos.append(embedder.align(load_image(data / "fs2k-train" / record["photo"])))
        sketch = load_image(data / "fs2k-train" / record["sketch"])
        face = embedder.locate(sketch, sketch_fallback=True)
        how[face.alignment] = how.get(face.alignment, 0) + 1
        detected.append(face.crop)
        framed.append(align_landmarks(sketch, framed_landmarks(*sketch.shape[:2]), 112))
    gallery = embedder.embed_aligned(np.stack(photos))
    truth = np.arange(len(records))
    out = {"pairs": len(records), "landmarks_from": how}
    for name, crops in (("detected_landmarks", detected), ("framed_fallback_always", framed)):
        metrics = identification_metrics(embedder.embed_aligned(np.stack(crops)) @ gallery.T, truth)
        out[name] = {f"rank{k}": round(v, 4) for k, v in metrics.rank_rates.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/faces.json")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=["detection", "celeba_sface", "fs2k_dev_sketch_to_photo"],
        help="run only these parts, updating the others' figures already in --out",
    )
    args = parser.parse_args()

    embedder = FaceEmbedder.from_registry(Registry.load(allow=["yunet", "sface"]))
    result = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    result.update(
        machine=f"{platform.machine()} {platform.processor() or ''} 2-core CPU (shared), "
        f"{platform.system()} {platform.release()}",
        date=datetime.date.today().isoformat(),
        command="python benchmarks/faces_accuracy.py",
        yunet={"score_threshold": 0.6, "max_side": 640, "min_side": 160},
    )
    parts = {
        "detection": lambda: detection_rates(embedder, args.data),
        "celeba_sface": lambda: celeba_report(celeba_embeddings(embedder, args.data), args.data),
        "fs2k_dev_sketch_to_photo": lambda: sketch_fallback_report(embedder, args.data),
    }
    seconds = result.get("seconds", {})
    if not isinstance(seconds, dict):  # files written before timings were kept per part
        seconds = {"all parts (earlier run)": seconds}
    for name, run in parts.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        result[name] = run()
        seconds[name] = round(time.perf_counter() - start, 1)
        print(json.dumps({name: result[name]}, indent=1), flush=True)
    result["seconds"] = seconds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
