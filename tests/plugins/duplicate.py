"""Registers a face encoder under a name the `good` plugin already uses."""

from facefit import hookimpl
from tests.plugins.good import MeanColourEncoder


class OtherMeanColour(MeanColourEncoder):
    """Same name, different package: a conflict."""


@hookimpl
def register_face_encoders(register):
    register(OtherMeanColour)
