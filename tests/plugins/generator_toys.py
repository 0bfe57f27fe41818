"""Tiny deterministic encoders and a detector for conditioner and generator tests.

``tiny-text`` encodes a sentence as word-hash tokens (4 tokens of 12, padding
masked); ``tiny-face`` embeds an aligned 16×16 crop as the mean colours of its
quadrants (8-d, as the tiny generator expects); ``fixed-landmarks`` finds one face
whose landmarks sit where the template would be if the whole image were the crop.
Nothing here loads weights.
"""

from __future__ import annotations

import hashlib

import numpy as np

from facefit import hookimpl
from facefit.interfaces import Detection, FaceDetector, FaceEncoder, TextEmbedding, TextEncoder


class TinyText(TextEncoder):
    name = "tiny-text"
    dim = 12
    num_tokens = 4

    def encode(self, texts):
        n = len(texts)
        tokens = np.zeros((n, self.num_tokens, self.dim), np.float32)
        mask = np.zeros((n, self.num_tokens), bool)
        for i, text in enumerate(texts):
            for j, word in enumerate(text.split()[: self.num_tokens]):
                seed = int(hashlib.sha256(word.encode()).hexdigest()[:8], 16)
                tokens[i, j] = np.random.default_rng(seed).normal(size=self.dim)
                mask[i, j] = True
            tokens[i, ~mask[i]] = 7.0  # garbage under the padding: conditioners must zero it
        pooled = tokens.sum(1) + 1e-3
        return TextEmbedding(tokens, mask, pooled / np.linalg.norm(pooled, axis=1, keepdims=True))


class TinyFace(FaceEncoder):
    name = "tiny-face"
    dim = 8
    input_size = 16

    def embed_aligned(self, faces):
        grey = faces.astype(np.float32).mean(-1)
        quads = [grey[:, :8, :8], grey[:, :8, 8:], grey[:, 8:, :8], grey[:, 8:, 8:]]
        means = np.stack([q.mean(axis=(1, 2)) for q in quads], axis=1) - 127.5
        return np.concatenate([means, means[:, ::-1] * 0.5], axis=1)


class FixedLandmarks(FaceDetector):
    name = "fixed-landmarks"

    def detect(self, image):
        from facefit.imaging.faces import template

        h, w = image.shape[:2]
        side = min(h, w)
        points = template(side) + np.float32([(w - side) / 2, (h - side) / 2])
        return [Detection(box=(0.0, 0.0, float(w), float(h)), landmarks=points, score=1.0)]


@hookimpl
def register_text_encoders(register):
    register(TinyText)


@hookimpl
def register_face_encoders(register):
    register(TinyFace)


@hookimpl
def register_face_detectors(register):
    register(FixedLandmarks)
