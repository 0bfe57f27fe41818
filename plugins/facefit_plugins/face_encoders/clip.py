"""Face encoder and text encoder ``clip``: a CLIP checkpoint that the user supplies.

No CLIP weights ship with facefit. Point the required ``checkpoint`` option at
either

- a folder saved by transformers' ``CLIPModel.save_pretrained`` (``config.json``
  with ``model_type: clip``, the weights, and for text the tokenizer files), or
- an open_clip checkpoint file, together with ``open_clip_model`` naming its
  architecture (``"ViT-B-32"``…); this needs ``pip install open_clip_torch`` and
  gives image embeddings only.

::

    [face_encoder]
    plugin = "clip"
    checkpoint = "/models/clip-vit-base-patch32"

The face encoder gives the projected image embedding (``dim`` = the config's
``projection_dim``) of aligned crops, resized to the model's image size and
normalized with the checkpoint's ``preprocessor_config.json`` mean/std (CLIP's
defaults when absent). The text encoder gives every token's final state passed
through CLIP's text projection, cut or padded to ``num_tokens``, and the pooled
(end-of-text) embedding exactly as ``CLIPModel.get_text_features`` computes it,
L2-normalized, so image and text vectors share one space.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.errors import InputError, PluginError, WeightsNotFoundError
from facefit.files import read_into
from facefit.interfaces import FaceEncoder, TextEmbedding, TextEncoder

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
HELP = (
    "pass option checkpoint = a folder written by transformers' CLIPModel.save_pretrained "
    "(config.json + model.safetensors), or an open_clip checkpoint file with option "
    "open_clip_model"
)


def _checkpoint_dir(checkpoint: str | Path) -> Path:
    """The transformers CLIP folder, checked enough to give a useful error."""
    folder = Path(checkpoint).expanduser()
    if not folder.exists():
        raise WeightsNotFoundError(f"clip: checkpoint {folder} not found; {HELP}")
    if not folder.is_dir():
        raise InputError(f"clip: checkpoint {folder} is a file; {HELP}")
    config = folder / "config.json"
    if not config.is_file():
        raise WeightsNotFoundError(f"clip: {folder} has no config.json; {HELP}")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"clip: cannot read {config}: {exc}") from None
    if model_type != "clip":
        raise InputError(
            f"clip: {config} describes a {model_type!r} model, not a CLIPModel ('clip'); {HELP}"
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise WeightsNotFoundError(
            f"clip: {folder} has no weights ({', '.join(WEIGHT_FILES)}); {HELP}"
        )
    return folder


def _content_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        with path.open("rb") as handle:
            read_into(digest, handle)
    return digest.hexdigest()[:16]


def _load_clip(folder: Path, device: str) -> Any:
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(str(folder), local_files_only=True)
    return model.to(torch.device(device)).eval()


class CLIPImageEncoder(FaceEncoder):
    """CLIP image embeddings of aligned faces, from a user-supplied checkpoint."""

    name = "clip"
    dim = 512  # replaced per instance by the checkpoint's projection_dim
    input_size = 224  # replaced per instance: the option, or the model's image size

    def __init__(
        self,
        checkpoint: str,
        input_size: int | None = None,
        open_clip_model: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        self.checkpoint = Path(checkpoint).expanduser()
        self.open_clip_model = open_clip_model
        self.device = device
        self.batch_size = int(batch_size)
        self._model: Any = None
        self._version: str | None = None
        if open_clip_model:
            self._load_open_clip()
        else:
            self._init_transformers()
        if input_size is not None:
            if input_size < 16:
                raise InputError(f"clip: input_size must be at least 16, got {input_size}")
            self.input_size = int(input_size)

    # -- transformers CLIPModel -----------------------------------------------------------

    def _init_transformers(self) -> None:
        from transformers import CLIPConfig

        folder = _checkpoint_dir(self.checkpoint)
        config = CLIPConfig.from_pretrained(str(folder), local_files_only=True)
        self.dim = int(config.projection_dim)
        self.image_size = int(config.vision_config.image_size)
        self.input_size = self.image_size
        mean, std = OPENAI_MEAN, OPENAI_STD
        processor = folder / "preprocessor_config.json"
        if processor.is_file():
            settings = json.loads(processor.read_text(encoding="utf-8"))
            mean = tuple(settings.get("image_mean", mean))
            std = tuple(settings.get("image_std", std))
        self.mean, self.std = mean, std

    # -- open_clip --------------------------------------------------------------------------

    def _load_open_clip(self) -> None:
        try:
            import open_clip
        except ImportError:
            raise PluginError(
                "clip: option open_clip_model needs open_clip; run: pip install open_clip_torch "
                "(or save the model with transformers' CLIPModel.save_pretrained)"
            ) from None
        import torch

        if not self.checkpoint.is_file():
            raise WeightsNotFoundError(f"clip: open_clip checkpoint {self.checkpoint} not found")
        model = open_clip.create_model(self.open_clip_model, pretrained=str(self.checkpoint))
        self._model = model.to(torch.device(self.device)).eval()
        visual = model.visual
        size = getattr(visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.input_size = self.image_size
        self.dim = int(visual.output_dim)
        self.mean = tuple(getattr(visual, "image_mean", None) or OPENAI_MEAN)
        self.std = tuple(getattr(visual, "image_std", None) or OPENAI_STD)

    # -- embedding --------------------------------------------------------------------------

    @property
    def version(self) -> str:  # type: ignore[override]
        """The checkpoint's content hash, so a gallery is never searched with other weights."""
        if self._version is None:
            if self.checkpoint.is_file():
                files = [self.checkpoint]
            else:
                files = [
                    p
                    for p in self.checkpoint.iterdir()
                    if p.suffix in (".json", ".bin", ".safetensors") and p.is_file()
                ]
            self._version = f"clip-{_content_hash(files)}"
        return self._version

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """``(N, input_size, input_size, 3)`` RGB uint8 → ``(N, dim)`` image embeddings."""
        import torch

        if self._model is None:
            self._model = _load_clip(self.checkpoint, self.device)
        model = self._model
        device = next(model.parameters()).device
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        out = []
        for start in range(0, len(faces), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(faces[start : start + self.batch_size]))
            x = batch.to(device).permute(0, 3, 1, 2).float() / 255.0
            if x.shape[-1] != self.image_size:
                x = torch.nn.functional.interpolate(
                    x,
                    size=(self.image_size, self.image_size),
                    mode="bicubic",
                    align_corners=False,
                    antialias=x.shape[-1] > self.image_size,
                ).clamp(0, 1)
            x = (x - mean) / std
            with torch.inference_mode():
                if self.open_clip_model:
                    vectors = model.encode_image(x)
                else:
                    pooled = model.vision_model(pixel_values=x).pooler_output
                    vectors = model.visual_projection(pooled)
            out.append(vectors.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


class CLIPTextEncoder(TextEncoder):
    """CLIP text embeddings (projected tokens + pooled) from a transformers checkpoint."""

    name = "clip"
    dim = 512  # replaced per instance by the checkpoint's projection_dim
    num_tokens = 77

    def __init__(
        self,
        checkpoint: str,
        num_tokens: int | None = None,
        device: str = "cpu",
        batch_size: int = 64,
    ) -> None:
        from transformers import CLIPConfig

        self.folder = _checkpoint_dir(checkpoint)
        config = CLIPConfig.from_pretrained(str(self.folder), local_files_only=True)
        self.dim = int(config.projection_dim)
        self.max_length = int(config.text_config.max_position_embeddings)
        self.num_tokens = int(num_tokens) if num_tokens is not None else self.max_length
        if self.num_tokens < 2:
            raise InputError(f"clip: num_tokens must be at least 2, got {self.num_tokens}")
        self.device = device
        self.batch_size = int(batch_size)
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsNotFoundError(
                f"clip: {self.folder} has no usable tokenizer ({exc}); save the model's "
                f"tokenizer there too (tokenizer.save_pretrained)"
            ) from None
        self._model = _load_clip(self.folder, self.device)

    def encode(self, texts: list[str]) -> TextEmbedding:
        """Tokens ``(N, num_tokens, dim)``, mask, and pooled ``(N, dim)`` (normalized)."""
        if isinstance(texts, str):
            texts = [texts]
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"clip: text {i} is {type(text).__name__}, expected a string")
        if not texts:
            return TextEmbedding(
                np.zeros((0, self.num_tokens, self.dim), np.float32),
                np.zeros((0, self.num_tokens), bool),
                np.zeros((0, self.dim), np.float32),
            )
        self._load()
        parts = [
            self._encode_batch(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        return TextEmbedding(*(np.concatenate([p[j] for p in parts]) for j in range(3)))

    def _encode_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        model = self._model
        device = next(model.parameters()).device
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        with torch.inference_mode():
            out = model.text_model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
            pooled = torch.nn.functional.normalize(model.text_projection(out.pooler_output), dim=-1)
            states = model.text_projection(out.last_hidden_state)
        mask = batch["attention_mask"].bool()
        keep = min(states.shape[1], self.num_tokens)
        tokens = torch.zeros(len(texts), self.num_tokens, self.dim, device=device)
        tokens[:, :keep] = states[:, :keep] * mask[:, :keep, None]
        token_mask = torch.zeros(len(texts), self.num_tokens, dtype=torch.bool, device=device)
        token_mask[:, :keep] = mask[:, :keep]
        return tokens.float().cpu().numpy(), token_mask.cpu().numpy(), pooled.float().cpu().numpy()


@hookimpl
def register_face_encoders(register):
    register(CLIPImageEncoder)


@hookimpl
def register_text_encoders(register):
    register(CLIPTextEncoder)
