"""Pictures for the page: a photo with its saliency map laid over it (:func:`overlay_png`), one plain
sentence on where the model looked (:func:`describe_map`), and the PNG / data-URL plumbing they share.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from pawtf.data.photos import resize_like_training

__all__ = ["DISPLAY_SIDE", "data_url", "describe_map", "display", "overlay_png", "png"]

#: Longest side of the photo under an overlay or a crop preview.
DISPLAY_SIDE = 640


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def png(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False, compress_level=3)
    return buf.getvalue()


def display(photo: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    h, w = photo.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return photo
    return resize_like_training(photo, (max(1, round(w * scale)), max(1, round(h * scale))))


def overlay_png(photo: np.ndarray, saliency: np.ndarray) -> bytes:
    """``photo`` (RGB uint8, any size; shown at most :data:`DISPLAY_SIDE` px) with ``saliency`` ([h, w] in
    [0, 1], stretched to the photo) laid over it in the colours of every pawtf figure
    (:data:`pawtf.explain.figures.CMAP`, half opaque), as PNG bytes."""
    from matplotlib import colormaps

    from pawtf.explain.figures import ALPHA, CMAP, fit_to

    shown = display(photo).astype(np.float32)
    colours = colormaps[CMAP](np.clip(fit_to(saliency, shown.shape[:2]), 0, 1))[..., :3] * 255.0
    return png((1 - ALPHA) * shown + ALPHA * colours)


_PLACES = (("upper left", "top", "upper right"), ("left side", "centre", "right side"),
           ("lower left", "bottom", "lower right"))


def describe_map(saliency: np.ndarray, what: str = "score") -> str:
    """One plain sentence on a saliency map ([h, w] in [0, 1]): where the model looked.

    >>> m = np.zeros((30, 30)); m[2:8, 2:8] = 1
    >>> describe_map(m)
    "Red and yellow show what moved this photo's predicted score most; blue barely mattered. Here the model looks mostly at the upper left of the photo (a small area: 2% of the photo holds half of what mattered)."
    """
    saliency = np.clip(np.asarray(saliency, np.float64), 0, None)
    total = saliency.sum()
    lead = f"Red and yellow show what moved this photo's predicted {what} most; blue barely mattered."
    if not np.isfinite(total) or total <= 0:
        return lead + " Here nothing stood out: the model's output hardly depends on any one part of the photo."
    h, w = saliency.shape
    ys, xs = np.indices(saliency.shape)
    cy, cx = (ys * saliency).sum() / total, (xs * saliency).sum() / total
    place = _PLACES[min(2, int(3 * cy / h))][min(2, int(3 * cx / w))]
    ordered = np.sort(saliency.ravel())[::-1]
    half = int(np.searchsorted(np.cumsum(ordered), total / 2)) + 1
    share = half / saliency.size
    spread = ("a small area" if share < 0.1 else "a fair part of the photo" if share < 0.25
              else "much of the photo")
    return (f"{lead} Here the model looks mostly at the {place} of the photo ({spread}: {share:.0%} of the "
            "photo holds half of what mattered).")
