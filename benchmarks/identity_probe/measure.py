"""How much does the identity alone steer x̂₀? For the identity-only probe's models.

    facefit train run benchmarks/identity_probe/plain.toml --threads 1
    facefit train run benchmarks/identity_probe/norm.toml --threads 1
    python benchmarks/identity_probe/measure.py out/identity-probe-plain/model \
        out/identity-probe-norm/model

For 64 CelebA training-pack photos (fixed noise), x̂₀ at t = 950, 800, 500 from the
photo's own SFace embedding, a photo of another identity's, and none: the mean
absolute change own → other (of 255) and each prediction's MSE to the photo.
"""

import sys

import numpy as np
import torch

from facefit.generator.conditions import empty_conditions
from facefit.generator.model import FaceGenerator
from facefit.generator.noise import noise_scheduler

torch.set_num_threads(1)
p = np.load("out/pack-64-v2.npz")
idx = np.where(p["sources"] == "celeba")[0]
rng = np.random.default_rng(0)
items = rng.choice(idx, 64, replace=False)
ids = p["identities"][items]
partner = np.array(
    [next(j for j in np.roll(np.arange(64), -k - 1) if ids[j] != ids[k]) for k in range(64)]
)
x0 = torch.tensor(p["photos"][items]).permute(0, 3, 1, 2).float() / 127.5 - 1
emb = torch.tensor(p["embeddings"][items].astype(np.float32))
for d in sys.argv[1:]:
    m = FaceGenerator.from_pretrained(d).float().eval()
    sched = noise_scheduler(m)
    sizes = m.condition_sizes()

    def cond(vectors, sizes=sizes):
        c = empty_conditions(64, **sizes)
        return c.__class__(
            **{**c.__dict__, "reference": vectors, "reference_present": torch.ones(64)}
        )

    g = torch.Generator().manual_seed(1)
    eps = torch.randn(x0.shape, generator=g)
    out = []
    for t in (950, 800, 500):
        tt = torch.full((64,), t)
        noisy = sched.add_noise(x0, eps, tt)
        with torch.no_grad():
            preds = {}
            for name, vec in (("own", emb), ("partner", emb[partner]), ("none", None)):
                c = cond(vec) if vec is not None else empty_conditions(64, **sizes)
                v = m(noisy, tt, c)
                a = sched.alphas_cumprod[t]
                preds[name] = a.sqrt() * noisy - (1 - a).sqrt() * v
        infl = (preds["own"] - preds["partner"]).abs().mean().item() * 127.5
        mse = {k: ((v - x0) ** 2).mean().item() for k, v in preds.items()}
        out.append(
            f"t={t}: swap {infl:.2f}/255, mse own {mse['own']:.4f} partner {mse['partner']:.4f} none {mse['none']:.4f}"
        )
    print(d, *out, sep="\n  ")
