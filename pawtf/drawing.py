"""Text on pictures, readable and never cut: the fonts and labels of contact sheets and crop previews.

Labels are laid out so that they never overlap: :func:`place_label` takes the first free spot,
:func:`with_legend` lists rows below a picture and :func:`annotated` draws tagged boxes and a legend.

>>> from PIL import Image, ImageDraw
>>> draw = ImageDraw.Draw(Image.new("RGB", (40, 20)))
>>> ellipsize(draw, "a_very_long_file_name.jpg", font(12), 40)[:3]
'...'
"""

from __future__ import annotations

__all__ = ["annotated", "ellipsize", "font", "label", "label_size", "overlaps", "place_label", "with_legend",
           "wrap"]


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


def label_size(draw, text: str, font) -> tuple[int, int]:
    """(width, height) in pixels of the box :func:`label` draws for `text`."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left + 5, bottom - top + 3


def overlaps(a, b) -> bool:
    """Whether boxes (left, top, right, bottom), both edges inclusive as PIL draws them, share a pixel.

    >>> overlaps((0, 0, 9, 9), (9, 0, 20, 9)), overlaps((0, 0, 9, 9), (10, 0, 20, 9))
    (True, False)
    """
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def place_label(draw, spots, text: str, colour, font, taken: list, bounds
                ) -> tuple[int, int, int, int] | None:
    """Draw `text` as a :func:`label` at the first of `spots` (top-left corners of its box) where the box
    lies inside `bounds` and overlaps none of `taken`; the box drawn is appended to `taken`.

    Args:
        draw: a PIL ``ImageDraw``.
        spots: (x, y) positions to try, in order.
        text, colour, font: as for :func:`label`.
        taken: boxes already drawn (left, top, right, bottom, inclusive); updated.
        bounds: (left, top, right, bottom) the box must stay in.

    Returns:
        The box drawn, or None when every spot was taken (nothing is drawn).

    >>> from PIL import Image, ImageDraw
    >>> draw, taken = ImageDraw.Draw(Image.new("RGB", (60, 40))), []
    >>> first = place_label(draw, [(0, 0), (0, 20)], "1", "white", font(12), taken, (0, 0, 59, 39))
    >>> second = place_label(draw, [(0, 0), (0, 20)], "2", "white", font(12), taken, (0, 0, 59, 39))
    >>> first[1], second[1], len(taken)
    (0, 20, 2)
    """
    width, height = label_size(draw, text, font)
    for x, y in spots:
        box = (int(x), int(y), int(x) + width - 1, int(y) + height - 1)
        inside = bounds[0] <= box[0] and bounds[1] <= box[1] and box[2] <= bounds[2] and box[3] <= bounds[3]
        if inside and not any(overlaps(box, other) for other in taken):
            left, top, _, _ = draw.textbbox((0, 0), text, font=font)
            drawn = label(draw, (box[0] + 2 - left, box[1] + 1 - top), text, colour, font)
            taken.append(drawn)  # == box
            return drawn
    return None


def _tag_box(draw, box, text: str, colour, font, taken: list, bounds) -> tuple[int, int, int, int] | None:
    """:func:`place_label` `text` inside the rectangle `box` (left, top, right, bottom, inclusive): along
    its top edge, else its bottom edge, else its left edge, where it overlaps no label in `taken`."""
    x0, y0, x1, y1 = box
    width, height = label_size(draw, text, font)
    xs = range(x0 + 2, max(x0 + 3, x1 - width), width + 1)
    ys = range(y0 + height + 3, max(y0 + height + 4, y1 - 2 * height), height + 1)
    spots = [(x, y0 + 2) for x in xs] + [(x, y1 - height - 1) for x in xs] + [(x0 + 2, y) for y in ys]
    return place_label(draw, spots, text, colour, font, taken, bounds)


def with_legend(image, rows, font, *, pad: int = 6, background=(24, 24, 24)):
    """`image` on a canvas with a legend below it: one :func:`label` per (text, colour) row, stacked.

    Args:
        image: a PIL RGB image, pasted at the canvas's top left.
        rows: (text, colour) pairs.
        font: the labels' font.
        pad: the margin around the legend.
        background: the canvas colour.

    Returns:
        (canvas, boxes): the canvas (as wide as the image or the longest row) and the rows' label boxes.

    >>> from PIL import Image
    >>> canvas, boxes = with_legend(Image.new("RGB", (10, 10)), [("a", "red"), ("b", "blue")], font(12))
    >>> canvas.height > 10 + 2 * 12, boxes[0][3] < boxes[1][1]
    (True, True)
    """
    from PIL import Image, ImageDraw

    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    sizes = [label_size(measure, text, font) for text, _ in rows]
    canvas = Image.new("RGB", (max([image.width] + [w + 2 * pad for w, _ in sizes]),
                               image.height + 2 * pad + sum(h + 2 for _, h in sizes)), background)
    canvas.paste(image, (0, 0))
    draw, boxes, y = ImageDraw.Draw(canvas), [], image.height + pad
    for (text, colour), (_, height) in zip(rows, sizes):
        boxes.append(place_label(draw, [(pad, y)], text, colour, font, [], (0, 0, canvas.width - 1,
                                                                            canvas.height - 1)))
        y += height + 2
    return canvas, boxes


def annotated(image, boxes, rows, font, max_side: int = 640):
    """`image` shrunk to at most `max_side` px, with boxes drawn on it (each tagged, where its tag fits
    beside no other label) and a legend below (:func:`with_legend`); no two labels overlap.

    Args:
        image: a PIL RGB image.
        boxes: (box, colour, line width, tag or None) in drawing order (the last on top); box is
            (left, top, right, bottom) in `image` pixels, right/bottom exclusive.
        rows: the legend's (text, colour) rows.
        font: the labels' font.
        max_side: the longest side of the image shown.

    Returns:
        (canvas, label boxes): the picture and the box of every label drawn (inclusive edges).

    >>> from PIL import Image
    >>> canvas, labels = annotated(Image.new("RGB", (2, 4000)), [((0, 0, 2, 10), "red", 1, "1")],
    ...                            [("a box", "red")], font(12))
    >>> canvas.height < 700 < canvas.width * 20, len(labels)   # the tag did not fit a 1-px photo
    (True, 1)
    """
    from PIL import Image, ImageDraw

    scale = min(1.0, max_side / max(image.size))
    pw, ph = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    shown = image if (pw, ph) == image.size else image.resize((pw, ph), Image.Resampling.LANCZOS)
    canvas, taken = with_legend(shown, rows, font)
    draw = ImageDraw.Draw(canvas)

    def scaled(box):
        x0, y0 = min(round(box[0] * scale), pw - 1), min(round(box[1] * scale), ph - 1)
        return [x0, y0, max(x0, round(box[2] * scale) - 1), max(y0, round(box[3] * scale) - 1)]

    for box, colour, width, _ in boxes:
        draw.rectangle(scaled(box), outline=colour, width=width)
    for box, colour, _, tag in reversed(boxes):  # the box on top picks its tag's place first
        if tag is not None:
            _tag_box(draw, scaled(box), tag, colour, font, taken, (0, 0, pw - 1, ph - 1))
    return canvas, taken
