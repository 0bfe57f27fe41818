"""Registers a class that does not derive from the interface."""

from facefit import hookimpl


class NotAnEncoder:
    name = "not-an-encoder"


@hookimpl
def register_face_encoders(register):
    register(NotAnEncoder)
