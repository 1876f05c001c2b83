"""The changes `pawtf sensitivity` makes to a photo (the study's test-time augmentation), one
:class:`Transform` each, in :data:`TRANSFORMS`. Each acts on the decoded full-resolution photo (PIL /
numpy), as it would on a real photo; the model then resizes the result as in training.

>>> [t.name for t in TRANSFORMS]
['flip', 'crop90', 'blur', 'brighter', 'darker', 'jpeg50', 'half_res']
>>> import numpy as np
>>> get_transform("crop90").apply(np.zeros((100, 200, 3), np.uint8)).shape
(90, 180, 3)
"""

from __future__ import annotations

import dataclasses
import io
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

__all__ = ["BLUR_RADIUS", "BRIGHTNESS", "JPEG_QUALITY", "TRANSFORMS", "Transform", "get_transform"]

#: The blur's Gaussian radius as a share of the photo's short side (2%: 10 px on a 500 px photo).
BLUR_RADIUS = 0.02
#: ``brighter`` and ``darker``: PIL's ImageEnhance.Brightness factors 1 + 0.3 and 1 - 0.3.
BRIGHTNESS = 0.3
#: ``jpeg50``: the JPEG quality the photo is re-encoded at (PIL's default chroma subsampling, 4:2:0).
JPEG_QUALITY = 50


@dataclasses.dataclass(frozen=True)
class Transform:
    """A change to a photo: its ``name``, a one-line ``description`` and ``apply`` (RGB uint8 array [H, W, 3]
    at full resolution -> RGB uint8 array, of any size: the model resizes it as in training)."""

    name: str
    description: str
    apply: Callable[[np.ndarray], np.ndarray]


def _pil(func: Callable[[Image.Image], Image.Image]) -> Callable[[np.ndarray], np.ndarray]:
    def apply(image: np.ndarray) -> np.ndarray:
        return np.asarray(func(Image.fromarray(np.asarray(image, np.uint8))).convert("RGB"), np.uint8)

    return apply


def _flip(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image)[:, ::-1])


def _crop90(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = max(1, round(0.9 * h)), max(1, round(0.9 * w))
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[top:top + ch, left:left + cw])


def _blur(img: Image.Image) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=max(0.5, BLUR_RADIUS * min(img.size))))


def _jpeg(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def _half(img: Image.Image) -> Image.Image:
    return img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.LANCZOS)


#: The transforms, in the order tables and figures list them.
TRANSFORMS: tuple[Transform, ...] = (
    Transform("flip", "mirrored left to right", _flip),
    Transform("crop90", "centre crop keeping 90% of the width and of the height", _crop90),
    Transform("blur", f"Gaussian blur, radius {BLUR_RADIUS:.0%} of the short side", _pil(_blur)),
    Transform("brighter", f"{BRIGHTNESS:.0%} brighter (PIL ImageEnhance.Brightness)",
              _pil(lambda img: ImageEnhance.Brightness(img).enhance(1 + BRIGHTNESS))),
    Transform("darker", f"{BRIGHTNESS:.0%} darker (PIL ImageEnhance.Brightness)",
              _pil(lambda img: ImageEnhance.Brightness(img).enhance(1 - BRIGHTNESS))),
    Transform("jpeg50", f"re-saved as a JPEG of quality {JPEG_QUALITY}", _pil(_jpeg)),
    Transform("half_res", "half the width and height (the model resizes it as any photo)", _pil(_half)),
)


def get_transform(name: str | Transform) -> Transform:
    """The transform called `name` (a `Transform` is returned as it is).

    Raises:
        ValueError: no transform has that name.
    """
    if isinstance(name, Transform):
        return name
    for t in TRANSFORMS:
        if t.name == name:
            return t
    raise ValueError(f"unknown transform {name!r}; choose from {', '.join(t.name for t in TRANSFORMS)}")
