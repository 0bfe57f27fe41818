"""Image and face primitives: reading and writing images, face detection and
alignment, line drawings, low-quality degradations.
"""
