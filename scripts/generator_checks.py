"""Two checks of a generator quoted in docs/generator.md and the model card.

    python scripts/generator_checks.py [--model default]

1. Token influence: the mean absolute change of the denoiser's prediction when all
   cross-attention tokens (domain, reference identity, text) are replaced by random
   ones, against the prediction's standard deviation (noisy input at t = 500, no
   spatial evidence). Near 0 means the model ignores text, identity and domain.
2. Peak memory (max RSS of this process) after loading the model and sampling four
   images with DDPM, 25 steps, guidance 3, one thread.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import resource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    args = parser.parse_args()

    import numpy as np
    import torch

    from facefit.generator import domain_condition, load_generator
    from facefit.generator.conditions import images_to_tensor
    from facefit.registry import Registry
    from facefit.types import Condition

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = load_generator(args.model)
    x = torch.randn(2, model.denoiser.in_channels, model.image_size, model.image_size)
    x[:, 3:] = 0
    t = torch.full((2,), 500.0)
    tokens = torch.randn(2, model.num_tokens, model.denoiser.token_dim)
    with torch.no_grad():
        a = model.denoiser(x, t, tokens)
        b = model.denoiser(x, t, torch.randn_like(tokens))
    print(
        f"token influence: {(a - b).abs().mean().item():.2e} (prediction std {a.std().item():.2f})"
    )

    registry = Registry.load()
    backend = registry.create_denoiser_backend("eager", model=model.denoiser)
    sampler = registry.create_sampler("ddpm", generator=model)
    blank = images_to_tensor(np.full((1, model.image_size, model.image_size), 255, np.uint8))[0]
    conditions = [Condition("sketch", spatial=blank), domain_condition("photo")]
    sampler.sample(backend, conditions, num_images=4, steps=25, guidance=3.0, seed=0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS after sampling 4 images: {rss:.0f} MB")
    print(f"{datetime.date.today()} {platform.machine()} torch {torch.__version__}")


if __name__ == "__main__":
    main()
