"""Text on pictures, readable and never cut: the fonts and labels of contact sheets and crop previews.

>>> from PIL import Image, ImageDraw
>>> draw = ImageDraw.Draw(Image.new("RGB", (40, 20)))
>>> ellipsize(draw, "a_very_long_file_name.jpg", font(12), 40)[:3]
'...'
"""

from __future__ import annotations

__all__ = ["ellipsize", "font", "label"]


def font(size: int):
    """Pillow's default font at `size` pixels (its fixed small font where Pillow has no FreeType)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def ellipsize(draw, text: str, font, width: int) -> str:
    """`text`, its start replaced by ``...`` until it fits in `width` pixels (file names keep their end)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("..." + text, font=font) > width:
        text = text[1:]
    return "..." + text


def label(draw, xy, text: str, colour, font) -> tuple[int, int, int, int]:
    """`text` in `colour` on a dark box at `xy`, readable over any photo; returns the box drawn."""
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    box = (left - 2, top - 1, right + 2, bottom + 1)
    draw.rectangle(box, fill=(0, 0, 0))
    draw.text(xy, text, fill=colour, font=font)
    return box
