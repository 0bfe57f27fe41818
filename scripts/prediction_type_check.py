"""ε- against v-prediction on a tiny v2 generator that must learn class → colour.

The class reaches the model only as the identity vector (the adaptive-norm path);
after N training steps both classes are sampled from the same noise, and the
red − blue gap between them is printed (at most 4; 0 means the condition was
ignored). This is the measurement docs/generator.md quotes for choosing
v-prediction; ``tests/test_generator_v2.py`` holds the training and sampling code.

    PYTHONPATH=. python scripts/prediction_type_check.py
"""

from __future__ import annotations

import platform
import time
from datetime import date

import torch

from tests.generator_helpers import tiny_generator
from tests.test_generator_v2 import V2, _train_colour


def main() -> None:
    torch.set_num_threads(1)
    print(f"# {date.today()} · {platform.machine()}, 1 torch thread, torch {torch.__version__}")
    for prediction, steps in (("epsilon", 100), ("epsilon", 300), ("v_prediction", 100)):
        model = tiny_generator(**{**V2, "prediction_type": prediction})
        started = time.perf_counter()
        gap = _train_colour(model, steps=steps, cut=False)
        seconds = time.perf_counter() - started
        print(f"{prediction:>12} {steps:>4} steps: red − blue gap {gap:.2f} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
