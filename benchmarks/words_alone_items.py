"""How often a training recipe shows the generator a description alone.

Draws batches from the training pack exactly as ``facefit train run`` does (the
recipe's ``[data]`` settings, a fixed seed) and counts the photo targets whose only
evidence is their description (no sketch, low-quality copy, identity or reference
image)::

    python benchmarks/words_alone_items.py examples/train/cpu-v2t.toml examples/train/cpu-v2u.toml
"""

from __future__ import annotations

import argparse
import platform
from datetime import UTC, datetime


def words_alone_share(config_path: str, batches: int, batch_size: int, seed: int) -> float:
    import torch

    from facefit.generator.training.config import load_train_config
    from facefit.generator.training.data import TrainingBatches, TrainingPack

    config = load_train_config(config_path)
    draw = TrainingBatches(TrainingPack.load(config.pack), config.data)
    generator = torch.Generator().manual_seed(seed)
    alone = 0
    for _ in range(batches):
        _, cond = draw(batch_size, generator)
        other = (
            cond.sketch_present
            + cond.lq_present
            + cond.reference_present
            + cond.reference_image_present
        )
        alone += int(((cond.text_present > 0) & (other == 0) & (cond.domain == 0)).sum())
    return alone / (batches * batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="+", help="training configs (TOML)")
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"# {datetime.now(UTC).isoformat(timespec='seconds')}, {platform.machine()}")
    for recipe in args.recipes:
        share = words_alone_share(recipe, args.batches, args.batch_size, args.seed)
        print(f"{recipe}: {share:.1%} of {args.batches * args.batch_size} items are words alone")


if __name__ == "__main__":
    main()
