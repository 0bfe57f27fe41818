"""The vendor's own test: facefit's conformance kit run on the toy retriever."""

from facefit_toy_retriever import PrefilterRetriever

from facefit.testing import RetrieverTests


class TestPrefilterRetriever(RetrieverTests):
    def make(self):
        return PrefilterRetriever(self.dim, prefix=12, candidates=64)
