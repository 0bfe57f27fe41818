"""Figure lettering: one text box for every grid."""

from __future__ import annotations

import numpy as np

from facefit.imaging.labels import text_box


def test_text_box_is_white_with_dark_text_of_the_asked_size():
    box = text_box("identity only", 120, 40)
    assert box.shape == (40, 120, 3) and box.dtype == np.uint8
    assert box.max() == 255 and box.min() < 100  # letters drawn on white
    assert not text_box("", 50, 20).min() < 255  # nothing to draw: all white


def test_long_text_wraps_onto_more_lines_and_stays_inside():
    one = text_box("short", 100, 80)
    many = text_box("a much longer label that cannot fit on one line of this box", 100, 80)
    inked_rows = lambda box: int((box.min(axis=(1, 2)) < 128).sum())  # noqa: E731
    assert inked_rows(many) > 2 * inked_rows(one)
    assert (many[:, -3:] == 255).all()  # wrapped, not cut at the right edge
