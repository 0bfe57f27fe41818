"""A plugin that imports cleanly but calls ``sys.exit`` when asked to register."""

import sys

from facefit import hookimpl


@hookimpl
def register_face_encoders(register):
    sys.exit("no licence key found")
