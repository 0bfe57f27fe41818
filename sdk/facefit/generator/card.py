"""The model card written beside a generator's weights (``README.md``).

It states what the model is, what it was trained on and for how long, what it
scored, and under which terms its data may be used, so a directory of weights
carries its own provenance.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facefit.generator.model import FaceGenerator

DATA_TERMS = {
    "fs2k": "FS2K (MIT-licensed repository; photos from CASIA-WebFace, stock sites and actors)",
    "celeba": "CelebA (non-commercial research use only)",
}


def model_card(
    model: FaceGenerator,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> str:
    """Markdown model card for ``model``; ``training`` and ``metrics`` as recorded by training."""
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    training = training or {}
    sources = training.get("sources") or []
    lines = [
        "---",
        "library_name: facefit",
        "tags: [diffusion, face-generation, forensic, pixel-space]",
        f"license: {training.get('license', 'other')}",
        "---",
        "",
        "# facefit face generator",
        "",
        "A conditional diffusion model in pixel space that renders aligned "
        f"{model.image_size}×{model.image_size} face crops (or sketches) from any subset of "
        "evidence: a sketch, a low-quality image, a text description and a reference "
        "identity. Built on diffusers' `UNet2DConditionModel`; load it with "
        "`FaceGenerator.from_pretrained(path)` or `facefit.generator.load_generator(path)`.",
        "",
        "## Architecture",
        "",
        f"- parameters: {model.parameter_count() / 1e6:.2f} M",
        _conditioning_line(config),
        f"- noise schedule: {config['beta_schedule']}, {config['num_train_timesteps']} steps, "
        f"predicts {config['prediction_type']}",
        "",
        "```json",
        json.dumps(config, indent=2, default=str),
        "```",
        "",
        "## Training",
        "",
    ]
    if training:
        for key in ("steps", "batch_size", "images", "seconds", "device", "identity_loss", "pack"):
            if key in training:
                lines.append(f"- {key.replace('_', ' ')}: {training[key]}")
        if sources:
            lines += [
                "",
                "Data (the development split in `facefit.datasets.splits` was held out):",
                "",
            ]
            lines += [f"- {DATA_TERMS.get(s, s)}" for s in sources]
    else:
        lines.append("Untrained or trained outside `facefit train`: no record.")
    lines += ["", "## Metrics", ""]
    if metrics:
        lines += [f"- {k}: {v}" for k, v in metrics.items()]
    else:
        lines.append("Not measured yet.")
    lines += [
        "",
        "## Intended use and limits",
        "",
        "Generated faces are investigative leads, never evidence of identity: a "
        "plausible face can match the wrong person. Rank gallery identities with an "
        "independent recogniser and have a person review every match. The training "
        "data is small and skewed; expect worse results for faces unlike it.",
        "",
    ]
    return "\n".join(lines)


def _conditioning_line(config: dict) -> str:
    """How the global evidence enters, in the card's words."""
    if config.get("conditioning") == "adanorm":
        image = (
            "; the aligned reference face as spatial evidence"
            if config.get("reference_image")
            else ""
        )
        stated = " and the attributes it states" if config.get("text_attributes") else ""
        return (
            f"- global evidence through adaptive group norm (scale-shift from the timestep "
            f"embedding): identity `{config['face_encoder']}` ({config['identity_dim']}-d), "
            f"text `{config['text_encoder']}` (sentence embedding of {config['text_dim']}"
            f"{stated}), target domain{image}"
        )
    return (
        f"- identity encoder: `{config['face_encoder']}` ({config['identity_dim']}-d, "
        f"{config['identity_tokens']} tokens); text encoder: `{config['text_encoder']}` "
        f"({config['text_tokens']} tokens of {config['text_dim']})"
    )
