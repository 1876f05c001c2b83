"""Candidate crops that keep the whole pet: the keep box, the minimum size, and the crops that pass.

Every candidate holds the pet's box grown by :data:`PET_MARGIN` of its size on each side (the *keep
box*) and has at least ``max(half the photo's short side, 224 px)`` on each side (capped by the photo):
see `pawtf.crop` for the families. Plain geometry in photo pixels; boxes are ``(left, top, right,
bottom)``, right and bottom exclusive.

>>> min_crop_size(400, 300), min_crop_size(1000, 800), min_crop_size(2, 4000)
((224, 224), (400, 400), (2, 224))
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from pawtf.quality.subject import grown_box

__all__ = ["MIN_CROP_SHARE", "MIN_CROP_SIDE", "ORIGINAL", "PET_MARGIN", "Box", "Candidate", "candidate_boxes",
           "keep_box", "min_crop_size", "salient_region"]

ORIGINAL = "original"
#: The pet's box is grown by this fraction of its width (height) on the left and right (top and bottom)
#: before crops must hold it: with 0.2, blanking the grown box leaves no cat or dog for the classifier in
#: 99% of the 600 real photos (96% with 0.1).
PET_MARGIN = 0.2
#: No crop side is shorter than max(this, MIN_CROP_SHARE x the photo's short side), capped by the photo.
MIN_CROP_SIDE = 224
MIN_CROP_SHARE = 0.5
THIRDS_FRACTIONS = (0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
CENTRE_FRACTION = 0.8
SALIENT_PAD = 0.15
SALIENT_MIN_FRACTION = 0.3
SALIENT_THRESHOLD = 0.5

Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive), in photo pixels


@dataclasses.dataclass
class Candidate:
    name: str
    box: Box
    score: float = float("nan")

    @property
    def size(self) -> tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]


def _clamp_box(cx: float, cy: float, w: float, h: float, width: int, height: int) -> Box:
    """A w x h box centred on (cx, cy), shifted (not shrunk) to lie inside the photo."""
    w, h = min(max(1, round(w)), width), min(max(1, round(h)), height)
    left = int(round(min(max(cx - w / 2, 0), width - w)))
    top = int(round(min(max(cy - h / 2, 0), height - h)))
    return left, top, left + w, top + h


def min_crop_size(width: int, height: int) -> tuple[int, int]:
    """The least (width, height) of a crop of a ``width`` x ``height`` photo: max(half the short side,
    :data:`MIN_CROP_SIDE`) on each side, capped by the photo."""
    side = max(math.ceil(MIN_CROP_SHARE * min(width, height)), MIN_CROP_SIDE)
    return min(width, side), min(height, side)


def keep_box(pet: Box, width: int, height: int, margin: float = PET_MARGIN) -> Box:
    """The box every crop must hold: the pet's box grown by ``margin`` of its size on each side, clipped
    to the photo."""
    return grown_box(pet, margin, width, height)


def _around(box: Box, w: int, h: int, width: int, height: int) -> Box:
    """A box of at least ``box``'s size and at least w x h (capped by the photo), centred on ``box`` as
    far as the photo allows, that holds ``box``."""
    out = []
    for lo, hi, size, limit in ((box[0], box[2], w, width), (box[1], box[3], h, height)):
        size = min(max(size, hi - lo), limit)
        start = min(max(round((lo + hi - size) / 2), hi - size, 0), lo, limit - size)
        out.append((start, start + size))
    (left, right), (top, bottom) = out
    return left, top, right, bottom


def candidate_boxes(width: int, height: int, pet: Box, subject: tuple[float, float] | None = None,
                    salient: Box | None = None) -> list[Candidate]:
    """The candidate crops of a ``width`` x ``height`` photo whose pet is in ``pet`` (the uncropped photo
    first), each holding :func:`keep_box` and at least :func:`min_crop_size`, deduplicated.

    Args:
        width, height: the photo's size.
        pet: the pet's box (left, top, right, bottom) in photo pixels.
        subject: the point the thirds crops place on an intersection (default: the pet box's centre).
        salient: the popularity model's salient region, for the salient candidates (None: none).

    Returns:
        The :class:`Candidate` list, :data:`ORIGINAL` first.
    """
    keep = keep_box(pet, width, height)
    least = min_crop_size(width, height)
    if subject is None:
        subject = ((pet[0] + pet[2]) / 2, (pet[1] + pet[3]) / 2)
    cx, cy = min(max(subject[0], keep[0]), keep[2]), min(max(subject[1], keep[1]), keep[3])
    out = [Candidate(ORIGINAL, (0, 0, width, height))]

    def fits(box: Box) -> bool:
        return (box[0] <= keep[0] and box[1] <= keep[1] and box[2] >= keep[2] and box[3] >= keep[3]
                and box[2] - box[0] >= least[0] and box[3] - box[1] >= least[1])

    side = min(width, height)
    for name, box in (("centre_square", _clamp_box(width / 2, height / 2, side, side, width, height)),
                      ("centre_80", _clamp_box(width / 2, height / 2, width * CENTRE_FRACTION,
                                               height * CENTRE_FRACTION, width, height))):
        if fits(box):
            out.append(Candidate(name, box))
    for name, fx, fy in (("thirds_tl", 1 / 3, 1 / 3), ("thirds_tr", 2 / 3, 1 / 3),
                         ("thirds_bl", 1 / 3, 2 / 3), ("thirds_br", 2 / 3, 2 / 3)):
        for fraction in THIRDS_FRACTIONS:  # the subject at (fx, fy) of the crop, in the smallest that fits
            w, h = width * fraction, height * fraction
            box = _clamp_box(cx + (0.5 - fx) * w, cy + (0.5 - fy) * h, w, h, width, height)
            if fits(box):
                out.append(Candidate(name, box))
                break
    regions = [("pet", keep)] + ([("salient", salient)] if salient is not None else [])
    for name, region in regions:  # widened to hold the keep box, grown about the centre to the least size
        union = (min(region[0], keep[0]), min(region[1], keep[1]), max(region[2], keep[2]),
                 max(region[3], keep[3]))
        box = _around(union, least[0], least[1], width, height)
        out.append(Candidate(name, box))
        s = max(box[2] - box[0], box[3] - box[1])
        if s <= side:
            out.append(Candidate(name + "_square", _around(box, s, s, width, height)))
    unique, seen = [], set()
    for c in out:
        if c.box not in seen and (c.name == ORIGINAL or fits(c.box)):
            seen.add(c.box)
            unique.append(c)
    return unique


def salient_region(saliency: np.ndarray, width: int, height: int, *, threshold: float = SALIENT_THRESHOLD,
                   pad: float = SALIENT_PAD, min_fraction: float = SALIENT_MIN_FRACTION) -> Box | None:
    """From a saliency map ``[h, w]`` of the (resized) photo: the box, in photo pixels, tight around the
    most salient region (the smoothed map's connected area above ``threshold`` x its peak, holding the
    peak; padded by ``pad`` of its size; at least ``min_fraction`` of each side). None for a flat map."""
    m = np.nan_to_num(np.asarray(saliency, np.float64))
    mh, mw = m.shape
    m = ndimage.gaussian_filter(m, sigma=max(mh, mw) / 32, mode="mirror", truncate=3.0)
    peak = m.max()
    if not np.isfinite(peak) or peak <= m.min() + 1e-12:
        return None
    labels, _ = ndimage.label(m >= m.min() + threshold * (peak - m.min()))  # 4-connected regions
    ys, xs = np.nonzero(labels == labels[np.unravel_index(int(np.argmax(m)), m.shape)])
    sx, sy = width / mw, height / mh  # map pixel -> photo pixel (the model input is a plain resize)
    x0, x1, y0, y1 = xs.min() * sx, (xs.max() + 1) * sx, ys.min() * sy, (ys.max() + 1) * sy
    bw = max((x1 - x0) * (1 + 2 * pad), width * min_fraction)
    bh = max((y1 - y0) * (1 + 2 * pad), height * min_fraction)
    return _clamp_box((x0 + x1) / 2, (y0 + y1) / 2, bw, bh, width, height)


# ---------------------------------------------------------------------------------------------------------
# Advice
