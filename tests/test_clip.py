"""The ``clip`` plugin on a tiny random CLIPModel saved in the transformers format."""

from __future__ import annotations

import functools
import importlib.util
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from facefit.errors import InputError, PluginError, PluginOptionError, WeightsNotFoundError
from facefit.testing import FaceEncoderTests, TextEncoderTests, random_faces
from facefit_plugins.face_encoders.clip import CLIPImageEncoder, CLIPTextEncoder

IMAGE_SIZE = 32
PROJECTION = 24


def _tokenizer():
    from transformers import CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({c: len(vocab) + i for i, c in enumerate(letters)})
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate(letters)})
    merges = [("m", "a"), ("ma", "n</w>"), ("g", "l")]
    vocab.update({"ma": len(vocab), "man</w>": len(vocab) + 1, "gl": len(vocab) + 2})
    return CLIPTokenizer(vocab=vocab, merges=merges)


@functools.cache
def _checkpoint() -> Path:
    """A random CLIPModel + tokenizer + preprocessor config, as save_pretrained writes them."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 40,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=PROJECTION,
    )
    folder = Path(tempfile.mkdtemp(prefix="facefit-clip-")) / "tiny-clip"
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]})
    )
    return folder


@functools.cache
def _model():
    from transformers import CLIPModel

    return CLIPModel.from_pretrained(str(_checkpoint()), local_files_only=True).eval()


@functools.cache
def _image_encoder() -> CLIPImageEncoder:
    return CLIPImageEncoder(checkpoint=str(_checkpoint()))


@functools.cache
def _text_encoder() -> CLIPTextEncoder:
    return CLIPTextEncoder(checkpoint=str(_checkpoint()), num_tokens=16)


def _features(output) -> torch.Tensor:
    # transformers 5 returns a model output with the projection in pooler_output
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class TestCLIPImage(FaceEncoderTests):
    plugin_name = "clip"

    def make(self):
        return _image_encoder()


class TestCLIPText(TextEncoderTests):
    plugin_name = "clip"

    def make(self):
        return _text_encoder()


def test_shapes_come_from_the_checkpoint():
    encoder = _image_encoder()
    assert encoder.dim == PROJECTION and encoder.input_size == IMAGE_SIZE
    assert _text_encoder().dim == PROJECTION
    assert CLIPTextEncoder(checkpoint=str(_checkpoint())).num_tokens == 40


def test_image_embedding_matches_get_image_features():
    faces = random_faces(3, IMAGE_SIZE, seed=5)
    pixels = torch.tensor(faces).permute(0, 3, 1, 2).float() / 255.0
    pixels = (pixels - 0.5) / 0.25  # the preprocessor_config.json mean/std
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            _features(_model().get_image_features(pixel_values=pixels)), dim=-1
        )
    np.testing.assert_allclose(_image_encoder().embed(faces), expected.numpy(), atol=1e-5)


def test_other_crop_sizes_are_resized():
    encoder = CLIPImageEncoder(checkpoint=str(_checkpoint()), input_size=112)
    assert encoder.input_size == 112
    faces = random_faces(2, 112, seed=6)
    vectors = encoder.embed(faces)
    assert vectors.shape == (2, PROJECTION)
    with pytest.raises(InputError, match="112"):
        encoder.embed(random_faces(1, IMAGE_SIZE))


def test_text_embedding_matches_get_text_features():
    texts = ["a man with glasses", "a man"]
    tokenizer = _tokenizer()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            _features(_model().get_text_features(**batch)), dim=-1
        )
        states = _model().text_model(**batch).last_hidden_state
        projected = _model().text_projection(states)
    out = _text_encoder().encode(texts)
    np.testing.assert_allclose(out.pooled, expected.numpy(), atol=1e-5)
    n = int(batch["attention_mask"][1].sum())
    assert out.mask[1].sum() == n and not out.tokens[1, n:].any()
    np.testing.assert_allclose(out.tokens[1, :n], projected[1, :n].numpy(), atol=1e-5)
    # image and text vectors share one space
    image = _image_encoder().embed(random_faces(1, IMAGE_SIZE))
    assert (image @ out.pooled.T).shape == (1, 2)


def test_missing_or_wrong_checkpoints_say_what_to_supply(tmp_path, registry):
    with pytest.raises(PluginOptionError, match="checkpoint"):
        registry.create_face_encoder("clip")
    with pytest.raises(WeightsNotFoundError, match="save_pretrained"):
        CLIPImageEncoder(checkpoint=str(tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="not a CLIPModel"):
        CLIPTextEncoder(checkpoint=str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(WeightsNotFoundError, match="no weights"):
        CLIPImageEncoder(checkpoint=str(tmp_path))
    encoder = registry.create_text_encoder("clip", checkpoint=str(_checkpoint()), num_tokens=8)
    assert encoder.encode(["a man"]).tokens.shape == (1, 8, PROJECTION)


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is not None, reason="open_clip installed")
def test_open_clip_without_the_package_names_the_install(tmp_path):
    with pytest.raises(PluginError, match="pip install open_clip_torch"):
        CLIPImageEncoder(checkpoint=str(tmp_path / "x.pt"), open_clip_model="ViT-B-32")
