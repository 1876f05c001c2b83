"""The augmented views of the oversampled copies: names and the integer codes that carry them.

An oversampled training copy is an integer *view* code beside its image: the code's bits say which of the
study's transforms it gets (`pawtf.data.augment.ViewAugment` applies them inside the training graph).
Plain numbers, so splitting and planning the oversampling need no TensorFlow.

>>> view_code(["flip", "crop_blur"])
3
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["VIEWS", "view_code"]

#: The transforms a view can combine, and the bit each sets in a view code. 0 = the original image.
VIEWS = {"flip": 1, "crop_blur": 2}


def view_code(names: Iterable[str]) -> int:
    """The integer code of a view combining the named transforms.

    Raises:
        ValueError: for an unknown transform.
    """
    code = 0
    for name in names:
        if name not in VIEWS:
            raise ValueError(f"unknown view {name!r}; known: {', '.join(VIEWS)}")
        code |= VIEWS[name]
    return code
