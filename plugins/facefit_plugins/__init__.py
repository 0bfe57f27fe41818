"""facefit's built-in plugins.

Each module is one plugin, registered through the ``facefit`` entry-point group
in facefit's ``pyproject.toml`` — exactly as a vendor's plugin package would be.
Read any of them as an example of how to write your own.
"""
