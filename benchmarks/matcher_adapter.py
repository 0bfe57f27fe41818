"""The alternative train-matcher did not ship: a sketch-only adapter on frozen SFace.

A residual linear map on the 128-d SFace embedding of *sketches only*
(``e + W e``, ``W`` starting at 0), trained with the same AdaFace loss against the same
fixed photo proxies, on the same FS2K training pairs, validated on the same held-out
pairs as ``facefit train-matcher`` (``split_validation``, seed 0). Photos keep their
SFace embeddings. It needs to know which input is a sketch, which a face encoder called
on aligned crops does not; this script measures whether it would be worth that.

    nice -n 15 .venv/bin/python benchmarks/matcher_adapter.py ../shared/data \\
        --cache out/matcher-cache --epochs 8 --lr 1e-3
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from facefit.imaging.faces import FaceEmbedder
from facefit.interfaces import LossInputs
from facefit.matcher.data import align_pairs, fs2k_training_pairs
from facefit.matcher.model import DEFAULT_SPLIT, GraphTail, graph_prefix, load_base
from facefit.matcher.train import rank_metrics, split_validation, trunk_features
from facefit.registry import Registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--cache", default="out/matcher-cache")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val-pairs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    registry = Registry.load()
    embedder = FaceEmbedder.from_registry(registry)
    data = align_pairs(fs2k_training_pairs(args.data), embedder, cache_dir=args.cache)
    base = load_base()
    prefix = graph_prefix(base, DEFAULT_SPLIT)
    tail = GraphTail(base, DEFAULT_SPLIT).eval()

    def embed(features: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            chunks = [
                tail(torch.from_numpy(features[i : i + 128].astype(np.float32)))
                for i in range(0, len(features), 128)
            ]
        return torch.cat(chunks)

    photos = trunk_features(prefix, data.photos, flips=True, cache_dir=args.cache)
    sketches = trunk_features(prefix, data.sketches, flips=True, cache_dir=args.cache)
    n = len(data)
    photo_emb = embed(photos.reshape(-1, *photos.shape[2:])).reshape(n, 2, -1)
    sketch_emb = embed(sketches.reshape(-1, *sketches.shape[2:])).reshape(n, 2, -1)
    train, val = split_validation(data, args.val_pairs, args.seed)
    unit = torch.nn.functional.normalize(photo_emb[train], dim=-1).mean(1)
    proxies = torch.nn.functional.normalize(unit, dim=-1)  # one FS2K pair per identity
    norms = sketch_emb[train, 0].norm(dim=1)

    dim = photo_emb.shape[-1]
    loss_fn = registry.create_loss("adaface", num_classes=len(train), embedding_size=dim)
    with torch.no_grad():
        loss_fn.head.kernel.copy_(proxies.T)
        loss_fn.head.batch_mean.fill_(float(norms.mean()))
        loss_fn.head.batch_std.fill_(float(norms.std()))
    loss_fn.head.kernel.requires_grad_(False)
    adapter = torch.nn.Linear(dim, dim, bias=True)
    torch.nn.init.zeros_(adapter.weight)
    torch.nn.init.zeros_(adapter.bias)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=args.lr, weight_decay=0.0)
    steps = math.ceil(len(train) / 64) * args.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    rng = np.random.default_rng(args.seed)
    labels = torch.arange(len(train))

    def validate(epoch: int) -> dict:
        with torch.no_grad():
            s = sketch_emb[val, 0]
            m = rank_metrics((s + adapter(s)).numpy(), photo_emb[val, 0].numpy())
        return {"epoch": epoch, **{f"val_{k}": v for k, v in m.items()}}

    rows = [validate(0)]
    print(json.dumps(rows[-1]), flush=True)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train))
        flips = torch.from_numpy(rng.integers(0, 2, len(order)))
        for start in range(0, len(order), 64):
            idx = torch.from_numpy(order[start : start + 64])
            x = sketch_emb[train][idx, flips[start : start + 64]]
            loss = loss_fn(LossInputs(prediction=x + adapter(x), target=labels[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        rows.append(validate(epoch))
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: r["val_mrr"])
    print("best", json.dumps(best))


if __name__ == "__main__":
    main()
