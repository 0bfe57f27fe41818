"""Built-in face detectors (``yunet``)."""
