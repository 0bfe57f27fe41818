"""The ``minilm`` text encoder: all-MiniLM-L6-v2 from the packaged files, offline."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from facefit.errors import InputError, WeightsNotFoundError
from facefit.testing import TextEncoderTests
from facefit_plugins.text_encoders import minilm


def _installed() -> bool:
    try:
        minilm.model_dir()
    except WeightsNotFoundError:
        return False
    return True


needs_model = pytest.mark.skipif(
    not _installed(), reason=f"all-MiniLM-L6-v2 files not installed ({minilm.INSTALL})"
)


@functools.cache
def _encoder() -> minilm.MiniLMEncoder:
    return minilm.MiniLMEncoder()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


@needs_model
class TestMiniLM(TextEncoderTests):
    plugin_name = "minilm"

    def make(self):
        return _encoder()


@needs_model
def test_pooled_output_is_sentence_transformers_mean_pooling():
    """Recompute the sentence embedding the sentence-transformers way, independently."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = str(minilm.model_dir())
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    texts = ["a smiling young woman with long golden hair and earrings", "a bald man"]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)

    out = _encoder().encode(texts)
    np.testing.assert_allclose(out.pooled, expected.numpy(), atol=1e-5)
    # token states are the model's own, cut to num_tokens, zero where padded
    n = int(batch["attention_mask"][1].sum())
    np.testing.assert_allclose(out.tokens[1, :n], states[1, :n].numpy(), atol=1e-5)
    assert out.mask[1].sum() == n and not out.tokens[1, n:].any()


@needs_model
def test_similar_descriptions_are_closer_than_unrelated_text():
    out = (
        _encoder()
        .encode(
            [
                "a man with a beard and glasses",
                "a bearded man wearing spectacles",
                "a young woman with long blond hair",
                "the quarterly report shows rising interest rates",
            ]
        )
        .pooled
    )
    assert _cos(out[0], out[1]) > _cos(out[0], out[2]) > _cos(out[0], out[3])
    assert _cos(out[0], out[1]) > 0.7


@needs_model
def test_batching_does_not_change_results():
    texts = ["a man", "a smiling young woman with wavy black hair, bangs and big lips"]
    encoder = minilm.MiniLMEncoder(batch_size=1)
    single = encoder.encode(texts)
    batched = _encoder().encode(texts)
    np.testing.assert_allclose(single.pooled, batched.pooled, atol=1e-5)
    np.testing.assert_allclose(single.tokens, batched.tokens, atol=1e-4)
    np.testing.assert_array_equal(single.mask, batched.mask)


@needs_model
def test_num_tokens_option_and_registry(registry):
    encoder = registry.create_text_encoder("minilm", num_tokens=8)
    out = encoder.encode(["a woman with a very long description " * 5])
    assert out.tokens.shape == (1, 8, 384) and out.mask.all()
    assert encoder.encode([]).tokens.shape == (0, 8, 384)


def test_bad_input_is_a_clear_error():
    with pytest.raises(InputError, match="text 1"):
        minilm.MiniLMEncoder().encode(["fine", 3])
    with pytest.raises(InputError, match="num_tokens"):
        minilm.MiniLMEncoder(num_tokens=1)


def test_missing_files_name_the_install_command(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFoundError, match=r"model\.safetensors"):
        minilm.model_dir(tmp_path)
    monkeypatch.setenv(minilm.ENV_PATH, str(tmp_path / "nowhere"))
    with pytest.raises(WeightsNotFoundError, match=minilm.ENV_PATH):
        minilm.MiniLMEncoder().encode(["a man"])
    monkeypatch.delenv(minilm.ENV_PATH)
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("FACEFIT_HOME", str(tmp_path / "empty-home"))
    with pytest.raises(WeightsNotFoundError, match="run: facefit models install"):
        minilm.model_dir()


def test_model_cache_is_used_when_it_holds_the_files(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "minilm"
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / name).write_bytes(b"x")
    monkeypatch.setenv("FACEFIT_HOME", str(tmp_path))
    monkeypatch.delenv(minilm.ENV_PATH, raising=False)
    assert minilm.model_dir() == folder
