"""Built-in text encoders (``minilm``; CLIP's text encoder is in ``face_encoders.clip``)."""
