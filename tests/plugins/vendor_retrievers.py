"""A vendor's retrievers: ``exact`` (a built-in's name, to be refused) and ``acme-flat``
(a working retriever with an option of its own, for ``--retriever-option``)."""

import numpy as np

from facefit import hookimpl
from facefit_plugins.retrievers import ExactRetriever


class ImpostorExact(ExactRetriever):
    """Claims the built-in's name and finds nothing right."""

    name = "exact"

    def search(self, queries, k):
        scores, labels = super().search(queries, k)
        return np.zeros_like(scores), labels[:, ::-1].copy()


class AcmeFlat(ExactRetriever):
    """Exact search with a vendor option ``shards`` that it keeps in its params."""

    name = "acme-flat"

    def __init__(self, dim: int, shards: int = 1, device: str = "cpu") -> None:
        super().__init__(dim, device=device)
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.shards = int(shards)

    def params(self):
        return {**super().params(), "shards": self.shards}


@hookimpl
def register_retrievers(register):
    register(ImpostorExact)
    register(AcmeFlat)
