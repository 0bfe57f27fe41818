"""A plugin with a misspelled hook name (missing the final s)."""

from facefit import hookimpl


@hookimpl
def register_face_encoder(register):
    pass
