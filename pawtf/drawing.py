"""Text on pictures, readable and never cut: the fonts and labels of contact sheets and crop previews.

>>> from PIL import Image, ImageDraw
>>> draw = ImageDraw.Draw(Image.new("RGB", (40, 20)))
>>> ellipsize(draw, "a_very_long_file_name.jpg", font(12), 40)[:3]
'...'
"""

from __future__ import annotations

__all__ = ["ellipsize", "font", "label", "wrap"]


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


def wrap(draw, text: str, font, width: int, max_lines: int | None = None) -> list[str]:
    """`text` broken into lines of at most `width` pixels at spaces (a word too long for a line is cut);
    with `max_lines`, the last line kept ends in ``...`` when text was left out.

    >>> from PIL import Image, ImageDraw
    >>> draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    >>> wrap(draw, "truncated or corrupt: image file is truncated", font(12), 120, max_lines=2)[0]
    'truncated or corrupt:'
    """
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= width:
            lines[-1] = candidate
        else:
            while draw.textlength(word, font=font) > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and draw.textlength(word[:cut], font=font) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            lines.append(word)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and draw.textlength(last + "...", font=font) > width:
            last = last[:-1]
        lines[-1] = last + "..."
    return lines


def label(draw, xy, text: str, colour, font) -> tuple[int, int, int, int]:
    """`text` in `colour` on a dark box at `xy`, readable over any photo; returns the box drawn."""
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    box = (left - 2, top - 1, right + 2, bottom + 1)
    draw.rectangle(box, fill=(0, 0, 0))
    draw.text(xy, text, fill=colour, font=font)
    return box
