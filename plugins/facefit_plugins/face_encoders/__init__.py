"""Built-in face encoders (``sface``, ``dlib``, ``adaface``, ``clip``, ``sketch-matcher``)."""
