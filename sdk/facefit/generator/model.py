"""The conditional face generator: a pixel-space diffusers UNet with evidence attached.

Spatial evidence (sketch, upsampled low-quality image and, in v2 models, the
aligned reference face; one presence channel each) is concatenated to the noisy
image. The global evidence — the reference identity (a face-encoder embedding),
the text and the target domain — reaches the network in one of two ways, set by
``conditioning``:

- ``"adanorm"`` (generator v2): the three are projected and concatenated into one
  vector that diffusers adds to the timestep embedding (``class_embed_type=
  "projection"``, zero-initialised last layer), so it scales and shifts the
  normalization of every residual block (``resnet_time_scale_shift="scale_shift"``),
  as in ADM and DiT's adaLN. The text is its sentence embedding (mean of the token
  embeddings). No cross-attention. With ``global_input_norm`` the identity and the
  sentence embedding are layer-normalized before their projections: a unit-norm
  128-d SFace embedding is small in every dimension, so without it the identity's
  share of the global vector varied far less across faces than the domain's
  (docs/generator.md, benchmarks/results/generator_v2_input_norm.md). With
  ``text_attributes`` the attributes the description states (gender, smiling,
  baldness, earrings, hair colour: :func:`facefit.text_agreement.attribute_features`)
  are added to the text's projection through their own zero-initialised layer: a
  sentence embedding carries "woman" and "blond" only faintly among everything else.
- ``"cross-attention"`` (the first model): the three become cross-attention tokens.
  Kept so that old model directories load and run.

An absent modality gets a learned null embedding instead of its projection, so the
network knows "not given" from "given and empty".

The per-step call a runtime backend runs is :attr:`FaceGenerator.denoiser`
(``(sample, timestep, encoder_hidden_states) → prediction``; for adanorm models
``encoder_hidden_states`` is the global vector as one token); the projections run
once per sampling call in :meth:`FaceGenerator.encode_conditions`.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from facefit.generator.conditions import DOMAINS, ConditionTensors, conditions_to_tensors
from facefit.text_agreement import ATTRIBUTE_FEATURES
from facefit.types import Condition

log = logging.getLogger(__name__)

SPATIAL_MODALITIES = (("sketch", 1), ("lq", 3))
"""Spatial evidence in input order, with its channel count; each adds a presence channel."""
REFERENCE_IMAGE = ("reference_image", 3)
"""The aligned reference face: a spatial modality of v2 models (after the others)."""
SPATIAL_CHANNELS = sum(c + 1 for _, c in SPATIAL_MODALITIES)
IMAGE_CHANNELS = 3
CONDITIONING = ("cross-attention", "adanorm")


def spatial_modalities(reference_image: bool) -> tuple[tuple[str, int], ...]:
    """The spatial evidence a model takes, in input order."""
    return SPATIAL_MODALITIES + ((REFERENCE_IMAGE,) if reference_image else ())


class Denoiser(nn.Module):
    """The UNet call: ``(sample, timestep, encoder_hidden_states) → prediction``.

    ``sample`` is the noisy image with the spatial evidence concatenated
    (``in_channels`` channels); the prediction has ``out_channels``. The attributes
    are the export contract a compiled runtime reads (:mod:`facefit_runtime.contract`).
    """

    def __init__(
        self,
        unet: UNet2DConditionModel,
        image_size: int,
        num_tokens: int,
        global_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.in_channels = int(unet.config.in_channels)
        self.out_channels = int(unet.config.out_channels)
        self.image_size = image_size
        self.num_tokens = num_tokens
        self.adanorm = global_dim is not None
        self.token_dim = int(global_dim if self.adanorm else unet.config.cross_attention_dim)

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        if self.adanorm:  # the one "token" is the global vector for the timestep embedding
            labels = encoder_hidden_states[:, 0]
            return self.unet(
                sample, timestep, encoder_hidden_states, class_labels=labels, return_dict=False
            )[0]
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class FaceGenerator(ModelMixin, ConfigMixin):
    """Conditional pixel-space diffusion model for aligned face crops.

    Saved and loaded like any diffusers model (``config.json`` + safetensors)::

        model = FaceGenerator(image_size=64)
        model.save_pretrained("my-model", fp16=True)
        model = FaceGenerator.from_pretrained("my-model")

    ``attention_heads`` is the number of heads per attention layer (diffusers'
    ``attention_head_dim`` argument is used as a head count by this UNet, so it is
    passed there). ``attention_levels`` says which resolution levels have
    cross-attention (evidence tokens are cheap at the low resolutions, costly at
    the high ones). The noise schedule (``num_train_timesteps``, ``beta_schedule``,
    ``prediction_type``) is part of the model: samplers build their scheduler from
    :attr:`scheduler_config`. ``face_encoder``/``text_encoder``/``sketch_extractor``
    record which plugins made the training conditions, so inference uses the same.
    """

    config_name = "config.json"
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        image_size: int = 64,
        block_out_channels: tuple[int, ...] = (32, 64, 128, 128),
        layers_per_block: int = 1,
        attention_levels: tuple[bool, ...] = (False, False, True, True),
        cross_attention_dim: int = 128,
        attention_heads: int = 4,
        norm_num_groups: int = 8,
        identity_dim: int = 128,
        identity_tokens: int = 4,
        text_dim: int = 384,
        text_tokens: int = 48,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        prediction_type: str = "epsilon",
        face_encoder: str = "sface",
        text_encoder: str = "minilm",
        sketch_extractor: str | None = None,
        conditioning: str = "cross-attention",
        reference_image: bool = False,
        global_input_norm: bool = False,
        text_attributes: bool = False,
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONING:
            raise ValueError(f"conditioning must be one of {CONDITIONING}, got {conditioning!r}")
        if text_attributes and conditioning != "adanorm":
            raise ValueError("text_attributes needs conditioning='adanorm' (generator v2)")
        if conditioning == "adanorm":
            self._init_adanorm()
            return
        if len(attention_levels) != len(block_out_channels):
            raise ValueError(
                f"attention_levels {tuple(attention_levels)} needs one flag per level of "
                f"block_out_channels {tuple(block_out_channels)}"
            )
        down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention_levels)
        up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention_levels))
        unet = UNet2DConditionModel(
            sample_size=image_size,
            in_channels=IMAGE_CHANNELS + SPATIAL_CHANNELS,
            out_channels=IMAGE_CHANNELS,
            down_block_types=down,
            up_block_types=up,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=attention_heads,
            norm_num_groups=norm_num_groups,
        )
        num_tokens = 1 + identity_tokens + text_tokens
        self.denoiser = Denoiser(unet, image_size, num_tokens)
        d = cross_attention_dim
        self.domain_embedding = nn.Embedding(len(DOMAINS), d)
        self.reference_proj = nn.Linear(identity_dim, identity_tokens * d)
        self.reference_null = nn.Parameter(torch.randn(identity_tokens, d) * 0.02)
        self.text_proj = nn.Linear(text_dim, d)
        self.text_null = nn.Parameter(torch.randn(text_tokens, d) * 0.02)
        self.token_norm = nn.LayerNorm(d)

    def _init_adanorm(self) -> None:
        """Global evidence through the timestep embedding (scale-shift norm), no attention."""
        c = self.config
        d = int(c.cross_attention_dim)
        levels = len(c.block_out_channels)
        spatial = sum(n + 1 for _, n in spatial_modalities(c.reference_image))
        unet = UNet2DConditionModel(
            sample_size=c.image_size,
            in_channels=IMAGE_CHANNELS + spatial,
            out_channels=IMAGE_CHANNELS,
            down_block_types=("DownBlock2D",) * levels,
            up_block_types=("UpBlock2D",) * levels,
            mid_block_type="UNetMidBlock2D",
            block_out_channels=tuple(c.block_out_channels),
            layers_per_block=c.layers_per_block,
            cross_attention_dim=3 * d,
            norm_num_groups=c.norm_num_groups,
            class_embed_type="projection",
            projection_class_embeddings_input_dim=3 * d,
            resnet_time_scale_shift="scale_shift",
        )
        # zero-initialised: the evidence starts with no effect and grows in (ControlNet, DiT)
        nn.init.zeros_(unet.class_embedding.linear_2.weight)
        nn.init.zeros_(unet.class_embedding.linear_2.bias)
        self.denoiser = Denoiser(unet, c.image_size, 1, global_dim=3 * d)
        self.domain_embedding = nn.Embedding(len(DOMAINS), d)
        self.reference_proj = nn.Sequential(
            nn.Linear(c.identity_dim, d), nn.SiLU(), nn.Linear(d, d)
        )
        self.reference_null = nn.Parameter(torch.randn(1, d) * 0.02)
        self.text_proj = nn.Sequential(nn.Linear(c.text_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.text_null = nn.Parameter(torch.randn(1, d) * 0.02)
        if c.text_attributes:  # zero-initialised: a trained model gains it without change
            self.attribute_proj = nn.Linear(len(ATTRIBUTE_FEATURES), d)
            nn.init.zeros_(self.attribute_proj.weight)
            nn.init.zeros_(self.attribute_proj.bias)

    @property
    def adanorm(self) -> bool:
        """True for v2 models: global evidence through adaptive group norm."""
        return self.config.conditioning == "adanorm"

    # -- shapes ----------------------------------------------------------------------------

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    @property
    def num_tokens(self) -> int:
        return self.denoiser.num_tokens

    @property
    def scheduler_config(self) -> dict[str, Any]:
        """The noise schedule the model was trained with, for ``Scheduler.from_config``."""
        return {
            "num_train_timesteps": int(self.config.num_train_timesteps),
            "beta_schedule": self.config.beta_schedule,
            "prediction_type": self.config.prediction_type,
        }

    def condition_sizes(self) -> dict[str, int]:
        """The shapes of the evidence this model takes (for :mod:`conditions` helpers)."""
        c = self.config
        return {
            "image_size": int(c.image_size),
            "identity_dim": int(c.identity_dim),
            "text_tokens": int(c.text_tokens),
            "text_dim": int(c.text_dim),
        }

    # -- conditioning ----------------------------------------------------------------------

    def conditions_to_tensors(self, conditions: list[Condition]) -> ConditionTensors:
        """One piece of evidence (a list of :class:`Condition`) as a batch of one."""
        return conditions_to_tensors(conditions, **self.condition_sizes())

    def encode_conditions(self, cond: ConditionTensors) -> tuple[torch.Tensor, torch.Tensor]:
        """Evidence → ``(spatial (B, C, S, S), tokens (B, num_tokens, D))``."""
        cond = cond.to(self.device, self.dtype)
        size = self.image_size
        maps = []
        for modality, _ in spatial_modalities(bool(self.config.reference_image)):
            present = cond.present(modality).view(-1, 1, 1, 1)
            maps += [getattr(cond, modality) * present, present.expand(-1, 1, size, size)]
        spatial = torch.cat(maps, dim=1)
        if self.adanorm:
            return spatial, self._global_vector(cond)

        batch = cond.batch_size
        p_ref = cond.reference_present.view(-1, 1, 1)
        reference = self.reference_proj(cond.reference).view(
            batch, -1, self.config.cross_attention_dim
        )
        reference = p_ref * reference + (1 - p_ref) * self.reference_null
        p_text = cond.text_present.view(-1, 1, 1)
        text = p_text * self.text_proj(cond.text) + (1 - p_text) * self.text_null
        domain = self.domain_embedding(cond.domain).unsqueeze(1)
        tokens = self.token_norm(torch.cat([domain, reference, text], dim=1))
        return spatial, tokens

    def _global_vector(self, cond: ConditionTensors) -> torch.Tensor:
        """Identity, text (sentence embedding, and the stated attributes where the model
        has ``text_attributes``) and domain as one ``(B, 1, 3·D)`` vector."""
        p_ref = cond.reference_present.view(-1, 1)
        identity = cond.reference
        # the sentence embedding: the mean of the non-padding token embeddings (MiniLM's pooling)
        used = (cond.text.abs().sum(-1, keepdim=True) > 0).to(cond.text.dtype)
        sentence = (cond.text * used).sum(1) / used.sum(1).clamp(min=1)
        if self.config.global_input_norm:
            identity = nn.functional.layer_norm(identity, identity.shape[-1:])
            sentence = nn.functional.layer_norm(sentence, sentence.shape[-1:])
        reference = p_ref * self.reference_proj(identity) + (1 - p_ref) * self.reference_null
        p_text = cond.text_present.view(-1, 1)
        text = self.text_proj(sentence)
        if self.config.text_attributes:  # what the description states, read exactly
            text = text + self.attribute_proj(cond.text_attributes)
        text = p_text * text + (1 - p_text) * self.text_null
        domain = self.domain_embedding(cond.domain)
        return torch.cat([domain, reference, text], dim=1).unsqueeze(1)

    def forward(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: ConditionTensors
    ) -> torch.Tensor:
        """The prediction for noisy images ``(B, 3, S, S)`` at ``timesteps`` given evidence."""
        spatial, tokens = self.encode_conditions(cond)
        return self.denoiser(torch.cat([noisy, spatial], dim=1), timesteps, tokens)

    # -- files -----------------------------------------------------------------------------

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | Path,
        *,
        fp16: bool = False,
        card: str | None = None,
        **kwargs: Any,
    ) -> Path:
        """Write ``config.json``, the weights (safetensors; fp16 halves the size) and
        ``README.md`` (``card``, or a minimal model card) to ``save_directory``."""
        from facefit.generator.card import model_card

        directory = Path(save_directory)
        model = copy.deepcopy(self).to(torch.float16) if fp16 else self
        super(FaceGenerator, model).save_pretrained(directory, safe_serialization=True, **kwargs)
        (directory / "README.md").write_text(card or model_card(self), encoding="utf-8")
        return directory

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
