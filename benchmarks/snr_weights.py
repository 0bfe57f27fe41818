"""The signal-to-noise ratio of the generator's noise schedule and the loss weight
Min-SNR-γ gives each timestep (the figures in docs/generator.md and
benchmarks/results/generator_v2_input_norm.md).

    python benchmarks/snr_weights.py [--gamma 5] [--prediction-type v_prediction]

Prints a markdown table; no model or data needed (the schedule is the model config's:
1,000 steps, ``squaredcos_cap_v2``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

TIMESTEPS = (50, 200, 500, 800, 950, 999)


def snr_table(
    gamma: float, prediction_type: str, timesteps: Sequence[int] = TIMESTEPS
) -> list[dict]:
    """One row per timestep: SNR and the Min-SNR-γ weight for ``prediction_type``."""
    import torch
    from diffusers import DDPMScheduler

    from facefit.generator.noise import min_snr_weights

    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type=prediction_type,
    )
    t = torch.tensor(list(timesteps))
    alphas = scheduler.alphas_cumprod[t].double()
    snr = alphas / (1 - alphas)
    weights = min_snr_weights(scheduler, t, gamma)
    return [
        {"t": int(a), "snr": float(b), "weight": float(c)}
        for a, b, c in zip(t.tolist(), snr.tolist(), weights.tolist(), strict=True)
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gamma", type=float, default=5.0)
    parser.add_argument(
        "--prediction-type", default="v_prediction", choices=("epsilon", "v_prediction", "sample")
    )
    args = parser.parse_args(argv)
    print(f"| t | SNR | Min-SNR-{args.gamma:g} weight ({args.prediction_type}) |")
    print("|---:|---:|---:|")
    for row in snr_table(args.gamma, args.prediction_type):
        print(f"| {row['t']} | {row['snr']:.3g} | {row['weight']:.3g} |")


if __name__ == "__main__":
    main()
