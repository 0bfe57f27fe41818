"""facefit's version, as installed (``0+unknown`` in a source tree without an install)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facefit")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"
