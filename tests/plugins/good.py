"""A well-behaved test plugin: one face encoder and one retriever needing an option."""

import numpy as np

from facefit import hookimpl
from facefit.interfaces import FaceEncoder, Retriever


class MeanColourEncoder(FaceEncoder):
    """Mean colour of four quadrants (12-d): deterministic and weight-free."""

    name = "mean-colour"
    dim = 12
    input_size = 32

    def embed_aligned(self, faces):
        h = self.input_size // 2
        quads = [faces[:, :h, :h], faces[:, :h, h:], faces[:, h:, :h], faces[:, h:, h:]]
        return np.concatenate([q.mean(axis=(1, 2)) for q in quads], axis=1) - 127.5


class NeedsPath(Retriever):
    """A retriever whose ``path`` option is required."""

    name = "needs-path"

    def __init__(self, path: str, dim: int = 4):
        super().__init__(dim)
        self.path = path

    def add(self, labels, vectors):
        raise NotImplementedError

    def search(self, queries, k):
        raise NotImplementedError


@hookimpl
def register_face_encoders(register):
    register(MeanColourEncoder)


@hookimpl
def register_retrievers(register):
    register(NeedsPath)
