"""The vendor's own test: facefit's conformance kit run on the toy encoder."""

from facefit.testing import FaceEncoderTests
from facefit_toy_encoder import ToyEncoder


class TestToyEncoder(FaceEncoderTests):
    def make(self):
        return ToyEncoder()
