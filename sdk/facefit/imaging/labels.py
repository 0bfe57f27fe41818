"""Text drawn into figures: labelled boxes for sample grids and gate grids.

One home for the figures' lettering, so that every grid wraps and sizes its labels
alike: :func:`text_box` returns a white RGB box with the text wrapped to its width.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FONT_SIZE", "text_box"]

FONT_SIZE = 13
"""Pixel size of ordinary label text (titles are 2 px larger)."""


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if line and draw.textlength(trial, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def text_box(text: str, width: int, height: int, *, bold: bool = False) -> np.ndarray:
    """``text`` in black on a white ``(height, width, 3)`` uint8 box, wrapped at word
    boundaries and centred vertically; lines that do not fit are left out.
    ``bold`` draws it larger, for titles."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (int(width), int(height)), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(FONT_SIZE + 2 if bold else FONT_SIZE)
    step = (FONT_SIZE + 5) if not bold else (FONT_SIZE + 7)
    lines = _wrap(draw, text, font, int(width) - 8)[: max(1, (int(height) - 4) // step)]
    top = max(2, (int(height) - step * len(lines)) // 2)
    for i, line in enumerate(lines):
        draw.text((4, top + i * step), line, fill="black", font=font)
    return np.asarray(canvas)
