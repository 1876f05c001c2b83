"""Scores for saliency maps: insertion/deletion AUC (causal), energy ratio and pointing game (ground truth).

Causal metrics (Petsiuk et al. 2018, adapted to a regression score): pixels are ranked by saliency
(ties broken by a seeded random order, so flat maps get no free ordering); *deletion* sets the top pixels
to zero step by step, *insertion* pastes them into a blurred copy of the photo step by step; the model's
score/100 is recorded after each step and the curve's area (trapezoid rule over the fraction of pixels
changed, 0..1) is the AUC. Good maps make insertion rise early (high AUC) and deletion fall early (low
AUC). ``step`` is the fraction of pixels changed per step (the paper's 224 pixels at 224 x 224 is
``1/224``); every curve point costs one forward pass, done in batches.

Ground truth (the demo data's ``masks/``): :func:`energy_ratio` is the share of the map's energy inside
the mask divided by the mask's share of the image (1.0: no better than a uniform map); the
:func:`pointing_hit` asks whether the map's maximum falls in the mask.

>>> import numpy as np
>>> mask = np.zeros((4, 4), bool); mask[:2, :2] = True
>>> sal = np.zeros((4, 4)); sal[0, 0] = 1.0
>>> energy_ratio(sal, mask), pointing_hit(sal, mask)
(4.0, True)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import ndimage

from pawtf.config import ExplainConfig

__all__ = ["DEFAULT_STEP", "auc", "blurred", "causal_curve", "deletion_auc", "energy_ratio", "insertion_auc",
           "pixel_order", "pointing_hit", "random_map"]

#: Default fraction of pixels changed per insertion/deletion step (`pawtf.config.ExplainConfig`: 0.02,
#: 50 steps, 51 forward passes).
DEFAULT_STEP = ExplainConfig.auc_step


def _check_map(saliency) -> np.ndarray:
    saliency = np.asarray(saliency, dtype=np.float64)
    if saliency.ndim != 2:
        raise ValueError(f"a saliency map must be [H, W], got shape {saliency.shape}")
    return np.nan_to_num(saliency, nan=0.0)


def _check_mask(mask, shape) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.dtype != bool:
        mask = mask > (127 if mask.dtype == np.uint8 else 0.5)
    if mask.shape != tuple(shape):
        raise ValueError(f"mask shape {mask.shape} differs from the map's {tuple(shape)}")
    return mask


def energy_ratio(saliency, mask) -> float:
    """(share of the map's total inside ``mask``) / (share of the image the mask covers).

    1.0 means no better than a uniform map; higher is better; ``nan`` for an all-zero map or an empty
    (or full) mask. The map must be non-negative (normalised maps are).

    >>> energy_ratio(np.ones((2, 2)), np.array([[1, 0], [0, 0]], bool))
    1.0
    """
    saliency = _check_map(saliency)
    mask = _check_mask(mask, saliency.shape)
    if saliency.min() < 0:
        raise ValueError("energy_ratio needs a non-negative map (normalise it first)")
    total, area = saliency.sum(), mask.mean()
    if total <= 0 or area in (0.0, 1.0):
        return float("nan")
    return float(saliency[mask].sum() / total / area)


def pointing_hit(saliency, mask, tolerance: int = 0) -> bool:
    """Whether the map's maximum falls in ``mask`` (dilated by ``tolerance`` pixels).

    Where several pixels share the maximum (a flat top), it is a hit only if most of them are in the
    mask, so an all-zero map does not score by covering everything.

    >>> pointing_hit(np.eye(3), np.eye(3, dtype=bool))
    True
    """
    saliency = _check_map(saliency)
    mask = _check_mask(mask, saliency.shape)
    if tolerance > 0:
        r = int(tolerance)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        mask = ndimage.binary_dilation(mask, structure=(yy ** 2 + xx ** 2) <= r * r)
    top = saliency >= saliency.max()
    return bool(mask[top].mean() > 0.5)


def random_map(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A random baseline map: i.i.d. uniform values (a random pixel order for insertion/deletion)."""
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def auc(curve) -> float:
    """Area under a curve sampled at equal steps over [0, 1] (trapezoid rule).

    >>> auc([0.0, 1.0]), auc([1.0, 1.0, 1.0])
    (0.5, 1.0)
    """
    curve = np.asarray(curve, dtype=np.float64)
    if len(curve) < 2:
        raise ValueError("a curve needs at least two points")
    return float((curve.sum() - curve[0] / 2 - curve[-1] / 2) / (len(curve) - 1))


def blurred(image, sigma: float | None = None) -> np.ndarray:
    """The insertion game's start: a Gaussian blur of ``image`` [H, W, 3] (the paper's sigma 5 at 224 px,
    scaled with the image's size when ``sigma`` is None)."""
    image = np.asarray(image, dtype=np.float32)
    if sigma is None:
        sigma = 5.0 * max(image.shape[:2]) / 224.0
    return ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0), mode="nearest").astype(np.float32)


def pixel_order(saliency, seed: int = 0) -> np.ndarray:
    """Flat pixel indices from most to least salient; ties in a seeded random order."""
    saliency = _check_map(saliency).ravel()
    perm = np.random.default_rng(seed).permutation(saliency.size)
    return perm[np.argsort(-saliency[perm], kind="stable")]


def causal_curve(predict: Callable[[np.ndarray], np.ndarray], image, saliency, mode: str,
                 step: float = DEFAULT_STEP, baseline=None, batch_size: int = 32, seed: int = 0,
                 scale: float = 100.0) -> np.ndarray:
    """Scores (divided by ``scale``) along the insertion or deletion game, ``1 + ceil(1/step)`` points.

    ``predict`` maps a batch of images [B, H, W, 3] (0-255) to scores [B] (metadata held fixed by the
    caller). ``baseline`` is where pixels go from (deletion: zeros) or come from (insertion: a blurred
    copy); both have the defaults of the paper.
    """
    if mode not in ("insertion", "deletion"):
        raise ValueError(f"mode must be 'insertion' or 'deletion', got {mode!r}")
    if not 0.0 < step <= 1.0:
        raise ValueError(f"step must be a fraction of the pixels in (0, 1], got {step}")
    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape[:2]
    saliency = _check_map(saliency)
    if saliency.shape != (h, w):
        raise ValueError(f"map shape {saliency.shape} differs from the image's {(h, w)}")
    if baseline is None:
        baseline = blurred(image) if mode == "insertion" else np.zeros_like(image)
    baseline = np.asarray(baseline, dtype=np.float32)
    order = pixel_order(saliency, seed)
    n_pixels = h * w
    per_step = max(1, math.ceil(step * n_pixels))
    counts = list(range(0, n_pixels, per_step)) + [n_pixels]
    # rank[p] = position of pixel p in the order; step k changes the pixels with rank < counts[k].
    rank = np.empty(n_pixels, np.int64)
    rank[order] = np.arange(n_pixels)
    rank = rank.reshape(h, w, 1)
    start, end = (baseline, image) if mode == "insertion" else (image, baseline)
    scores = []
    for lo in range(0, len(counts), batch_size):
        c = np.asarray(counts[lo:lo + batch_size]).reshape(-1, 1, 1, 1)
        batch = np.where(rank[None] < c, end[None], start[None])
        scores.append(np.asarray(predict(batch), dtype=np.float64).reshape(-1))
    return np.concatenate(scores) / scale


def insertion_auc(predict, image, saliency, step: float = DEFAULT_STEP, **kwargs) -> float:
    """Insertion AUC (higher is better): score/100 as the map's top pixels enter a blurred copy."""
    return auc(causal_curve(predict, image, saliency, "insertion", step, **kwargs))


def deletion_auc(predict, image, saliency, step: float = DEFAULT_STEP, **kwargs) -> float:
    """Deletion AUC (lower is better): score/100 as the map's top pixels are set to zero."""
    return auc(causal_curve(predict, image, saliency, "deletion", step, **kwargs))
