"""Crop advice: would a crop of this photo raise its predicted Pawpularity, without cutting the pet?

For one photo, :func:`advise_crop` first finds the pet (:func:`pawtf.quality.locate`: a box from the
class-activation map of an ImageNet classifier's cat and dog classes). Every candidate crop must hold that
box grown by :data:`PET_MARGIN` of its size on each side (the *keep box*), and no crop is smaller than
``max(half the photo's short side, 224 px)`` on either side (capped by the photo). Where no cat or dog is
found the advice says so and advises no crop (the uncropped photo is still scored).

The candidates that pass are scored by the popularity model with the uncropped photo in one batch and
ranked by predicted score, as before the locator: the best is advised when it beats the uncropped photo
by at least ``min_gain`` points, and then saved at full resolution. The locator only decides which crops
may be offered. Candidates:

``centre_square``      the largest centred square                 } kept only when they hold the keep box
``centre_80``          10% trimmed from every side                }   and have the minimum size
``thirds_tl/tr/bl/br``  the smallest crop of 75-100% of each side placing the subject (the pet map's peak,
                       usually the head) on that rule-of-thirds intersection and holding the keep box
``pet``                the keep box itself, grown to the minimum size
``pet_square``         the square around the keep box (when the photo has room for it)
``salient``            the most salient region for the popularity model (padded by 15%; a
                       :mod:`pawtf.explain` map, ``vanilla`` gradients by default) widened to hold the
                       keep box and the minimum size
``salient_square``     the square around that

Saliency needs the Keras model, so with a SavedModel the salient candidates are left out. The photo's
metadata flags are kept for every crop. Crops and previews are named after the photo and a hash of its
path (:func:`output_stem`), so two photos called ``rex.jpg`` in different folders never overwrite each
other.

Example:

>>> from pawtf.scorers import load_scorer
>>> from pawtf.crop import advise_crop
>>> advice = advise_crop(load_scorer("runs/demo"), "rex.jpg", out_dir="crops")  # doctest: +SKIP
>>> advice.best.name, advice.gain, advice.saved.name                            # doctest: +SKIP
('thirds_tl', 4.2, 'rex-1b2c3d4e_crop.jpg')
>>> min_crop_size(400, 300), min_crop_size(1000, 800), min_crop_size(2, 4000)
((224, 224), (400, 400), (2, 224))
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from pawtf.data.images import ImageError, load_rgb
from pawtf.data.photos import photo_flags, resize_like_training
from pawtf.data.schema import FLAGS
from pawtf.drawing import font, tag_box, with_legend
from pawtf.predict import collect_photos
from pawtf.quality.subject import grown_box

__all__ = ["DEFAULT_MIN_GAIN", "DEFAULT_OUT_DIR", "DEFAULT_SALIENCY", "MIN_CROP_SIDE", "ORIGINAL",
           "PET_MARGIN", "Candidate", "CropAdvice", "advise_crop", "advise_crops", "candidate_boxes",
           "check_saliency", "check_scorer", "crop_preview", "keep_box", "min_crop_size", "output_stem",
           "preview_image", "salient_region", "saliency_map", "save_crop"]

logger = logging.getLogger(__name__)

ORIGINAL = "original"
DEFAULT_MIN_GAIN = 1.0
#: Where `pawtf crop` saves the advised crops unless told.
DEFAULT_OUT_DIR = "crops"
DEFAULT_SALIENCY = "vanilla"
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


@dataclasses.dataclass
class CropAdvice:
    """The scored candidates of one photo (best first) and the advice.

    ``subject`` is what the locator found (:class:`pawtf.quality.Subject`); ``best`` the advised crop, or
    None when no crop raises the score by ``min_gain`` or no pet was found (keep the photo); ``gain`` the
    best candidate's score minus the uncropped photo's; ``saved`` the crop written, ``preview`` the
    preview written; ``error`` why the photo got no advice.
    """

    path: str
    original: float = float("nan")
    candidates: list[Candidate] = dataclasses.field(default_factory=list)
    best: Candidate | None = None
    gain: float = 0.0
    saved: Path | None = None
    saliency: str | None = None
    note: str = ""
    error: str | None = None
    subject: object | None = None
    preview: Path | None = None

    def summary(self) -> str:
        if self.error:
            return f"{self.path}: no advice: {self.error}"
        lines = [f"{self.path}: uncropped {self.original:.1f}"]
        if self.subject is not None:
            lines.append(f"  pet: {self.subject.note}")
        for c in self.candidates:
            w, h = c.size
            lines.append(f"  {c.name:<15} {c.score:6.1f}  ({c.score - self.original:+.1f})  "
                         f"box {c.box[0]},{c.box[1]} {w}x{h}")
        if self.best is not None:
            lines.append(f"  advice: crop {self.best.name!r}: {self.original:.1f} -> {self.best.score:.1f} "
                         f"({self.gain:+.1f})" + (f", saved to {self.saved}" if self.saved else ""))
        elif self.subject is not None and not self.subject.found:
            lines.append("  advice: no crop: no cat or dog was found, so no crop can be checked to keep it")
        elif not self.candidates:
            lines.append("  advice: keep the photo as it is (no crop holds the pet at the minimum size)")
        else:
            lines.append(f"  advice: keep the photo as it is (best crop {self.gain:+.1f})")
        if self.note:
            lines.append(f"  note: {self.note}")
        if self.preview is not None:
            lines.append(f"  preview: {self.preview}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Geometry


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


def _holds(box: Box, inner: Box) -> bool:
    return box[0] <= inner[0] and box[1] <= inner[1] and box[2] >= inner[2] and box[3] >= inner[3]


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


def _widened(region: Box, keep: Box, least: tuple[int, int], width: int, height: int) -> Box:
    """``region`` widened to hold ``keep`` and grown about its centre to at least ``least``."""
    union = (min(region[0], keep[0]), min(region[1], keep[1]), max(region[2], keep[2]),
             max(region[3], keep[3]))
    return _around(union, least[0], least[1], width, height)


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
        return _holds(box, keep) and box[2] - box[0] >= least[0] and box[3] - box[1] >= least[1]

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
    for name, region in regions:
        box = _widened(region, keep, least, width, height)
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
                   pad: float = SALIENT_PAD, min_fraction: float = SALIENT_MIN_FRACTION
                   ) -> tuple[Box, tuple[float, float]] | None:
    """From a saliency map ``[h, w]`` of the (resized) photo: the box, in photo pixels, tight around the
    most salient region (the smoothed map's connected area above ``threshold`` x its peak, holding the
    peak; padded by ``pad`` of its size; at least ``min_fraction`` of each side), and the saliency-weighted
    centroid of that region. None for a flat map."""
    m = np.nan_to_num(np.asarray(saliency, np.float64))
    mh, mw = m.shape
    m = ndimage.gaussian_filter(m, sigma=max(mh, mw) / 32, mode="mirror", truncate=3.0)
    peak = m.max()
    if not np.isfinite(peak) or peak <= m.min() + 1e-12:
        return None
    m = (m - m.min()) / (peak - m.min())
    labels, _ = ndimage.label(m >= threshold)  # 4-connected regions
    ys, xs = np.nonzero(labels == labels[np.unravel_index(int(np.argmax(m)), m.shape)])
    sx, sy = width / mw, height / mh  # map pixel -> photo pixel (the model input is a plain resize)
    x0, x1, y0, y1 = xs.min() * sx, (xs.max() + 1) * sx, ys.min() * sy, (ys.max() + 1) * sy
    weights = m[ys, xs]
    centroid = (float(((xs + 0.5) * weights).sum() / weights.sum() * sx),
                float(((ys + 0.5) * weights).sum() / weights.sum() * sy))
    bw = max((x1 - x0) * (1 + 2 * pad), width * min_fraction)
    bh = max((y1 - y0) * (1 + 2 * pad), height * min_fraction)
    return _clamp_box((x0 + x1) / 2, (y0 + y1) / 2, bw, bh, width, height), centroid


# ---------------------------------------------------------------------------------------------------------
# Advice


def check_saliency(method: str | None) -> None:
    """Raise ValueError unless `method` is None or a :mod:`pawtf.explain` method."""
    if method is not None:
        from pawtf.explain import check_method

        check_method(method)


def _explainer(scorer, method: str):
    cache = scorer.__dict__.setdefault("_explainers", {})
    if method not in cache:
        from pawtf.explain import make_explainer, target_for

        run = scorer.run
        cache[method] = make_explainer(method, run.model, target=target_for(run.task))  # the score
    return cache[method]


def saliency_map(scorer, photo: np.ndarray, flags: np.ndarray | None, method: str = DEFAULT_SALIENCY
                 ) -> np.ndarray:
    """The ``method`` saliency map [S, S] in [0, 1] of an RGB photo as the model sees it."""
    images = resize_like_training(photo, scorer.image_size).astype(np.float32)[None]
    meta = None if not scorer.uses_metadata else np.asarray(flags, np.float32).reshape(1, len(FLAGS))
    return np.asarray(_explainer(scorer, method)(images, meta))[0]


def check_scorer(scorer) -> None:
    """Crop advice compares scores in points: a model that predicts no score (buckets: classes) cannot
    give it.

    Raises:
        ValueError: naming the model's task.
    """
    if not scorer.task.predicts_score:
        raise ValueError(f"crop advice compares predicted scores in points; a {scorer.task.name} model "
                         f"predicts classes: use a model that predicts the score")


def output_stem(path: str | Path) -> str:
    """The name stem of a photo's crop and preview: its file name's stem and 8 hex digits of a hash of its
    absolute path (unique per photo path, the same on every run).

    >>> output_stem("a/rex.jpg") == output_stem("a/rex.jpg") != output_stem("b/rex.jpg")
    True
    >>> output_stem("a/rex.jpg")[:4]
    'rex-'
    """
    digest = hashlib.sha1(os.path.abspath(os.fspath(path)).encode("utf-8", "surrogateescape")).hexdigest()
    return f"{Path(path).stem}-{digest[:8]}"


def advise_crop(scorer, path: str | Path, flags: np.ndarray | None = None, *,
                saliency: str | None = DEFAULT_SALIENCY, min_gain: float = DEFAULT_MIN_GAIN,
                out_dir: str | Path | None = None, preview: bool = False,
                locator: Callable | None = None) -> CropAdvice:
    """Crop advice for the photo at ``path`` (see the module doc).

    Args:
        scorer: a score model (:class:`pawtf.scorers.Scorer`).
        path: the photo.
        flags: its 12 flags (zeros when None and the model takes them).
        saliency: a :mod:`pawtf.explain` method for the salient candidates, or None for none.
        min_gain: the least gain in points for advising a crop.
        out_dir: where the advised crop is saved, as ``<output_stem>_crop.jpg`` (``.png`` for PNG photos),
            full resolution; None: nothing is saved.
        preview: with ``out_dir``, also write ``<output_stem>_crops.png`` (:func:`crop_preview`).
        locator: RGB array -> :class:`pawtf.quality.Subject` (default :func:`pawtf.quality.locate`).

    Returns:
        The :class:`CropAdvice`; an unreadable photo's problem is in ``error``.

    Raises:
        ValueError: the scorer predicts no score (:func:`check_scorer`).
    """
    check_scorer(scorer)
    advice = CropAdvice(str(path))
    try:
        photo = load_rgb(path)
    except ImageError as err:
        advice.error = err.problem
        return advice
    height, width = photo.shape[:2]
    if scorer.uses_metadata:
        flags = np.zeros(len(FLAGS), np.float32) if flags is None else np.asarray(flags, np.float32)
    if locator is None:
        from pawtf.quality import locate as locator
    subject = advice.subject = locator(photo)
    notes, candidates = [], [Candidate(ORIGINAL, (0, 0, width, height))]
    if not subject.found:
        notes.append(f"{subject.note}: no crop advised (a crop must keep the whole pet)")
    else:
        salient = None
        if saliency and getattr(scorer, "run", None) is None:
            notes.append("no salient crops: saliency needs the Keras model; pass the run folder as the "
                         "model instead of a SavedModel")
        elif saliency:
            found = salient_region(saliency_map(scorer, photo, flags, saliency), width, height)
            if found is None:
                notes.append(f"no salient crops: the {saliency} map is flat for this photo")
            else:
                salient, advice.saliency = found[0], saliency
        candidates = candidate_boxes(width, height, subject.box, subject.peak, salient)
    crops = [photo[c.box[1]:c.box[3], c.box[0]:c.box[2]] for c in candidates]
    meta = None if not scorer.uses_metadata else np.repeat(flags[None], len(crops), 0)
    scores = scorer.score_arrays(crops, meta)  # one batch: every candidate and the uncropped photo
    for c, s in zip(candidates, scores):
        c.score = float(s)
    advice.original = candidates[0].score
    advice.candidates = sorted(candidates[1:], key=lambda c: -c.score)
    advice.note = "; ".join(notes)
    if advice.candidates:
        top = advice.candidates[0]
        advice.gain = top.score - advice.original
        if advice.gain >= min_gain:
            advice.best = top
            if out_dir is not None:
                advice.saved = save_crop(photo, top.box, Path(out_dir), Path(path))
    if preview and out_dir is not None:
        advice.preview = crop_preview(advice, Path(out_dir) / f"{output_stem(path)}_crops.png", photo=photo)
    return advice


def save_crop(photo: np.ndarray, box: Box, out_dir: Path, source: Path) -> Path:
    """Write the crop ``box`` of ``photo`` as ``out_dir/<output_stem(source)>_crop.<jpg|png>`` (replacing
    an older one of the same photo)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    crop = Image.fromarray(photo[box[1]:box[3], box[0]:box[2]])
    if source.suffix.lower() == ".png":
        out = out_dir / f"{output_stem(source)}_crop.png"
        crop.save(out, "PNG")
    else:
        out = out_dir / f"{output_stem(source)}_crop.jpg"
        crop.save(out, "JPEG", quality=95)
    return out


# ---------------------------------------------------------------------------------------------------------
# Preview

_ADVISED = (40, 200, 70)
_PET = (255, 255, 255)
_PALETTE = [(255, 210, 0), (0, 200, 255), (255, 120, 40), (230, 80, 230), (150, 150, 255), (255, 150, 170),
            (190, 230, 90), (255, 255, 140), (120, 230, 220), (210, 160, 110)]


def preview_image(advice: CropAdvice, photo: np.ndarray | None = None, max_side: int = 640
                  ) -> tuple[Image.Image, list[Box]]:
    """The photo (at most ``max_side`` px) with the pet's box (white) and every candidate box drawn, each
    candidate in its colour and numbered by rank (the advised one green and thick), and below it a legend
    of one row per candidate; labels never overlap.

    Args:
        advice: a photo's advice (not an error).
        photo: its RGB pixels (loaded from ``advice.path`` when None).
        max_side: the longest side of the photo shown.

    Returns:
        (image, label boxes): the picture and the box (left, top, right, bottom, inclusive) of every label
        drawn, pairwise disjoint.
    """
    photo = load_rgb(advice.path) if photo is None else photo
    height, width = photo.shape[:2]
    scale = min(1.0, max_side / max(width, height))
    shown = Image.fromarray(photo)
    pw, ph = max(1, round(width * scale)), max(1, round(height * scale))
    if (pw, ph) != (width, height):
        shown = shown.resize((pw, ph), Image.Resampling.LANCZOS)
    small = font(14)
    rows = [(f"uncropped {advice.original:.1f}", _PET)]
    if advice.subject is not None:
        rows.append((f"pet (white box): {advice.subject.note}" if advice.subject.found
                     else advice.subject.note + ": no crop advised", _PET))
    colours = []
    for i, c in enumerate(advice.candidates, 1):
        best = advice.best is not None and c.name == advice.best.name
        colours.append(_ADVISED if best else _PALETTE[(i - 1) % len(_PALETTE)])
        rows.append((f"{i} {c.name} {c.score:.1f} ({c.score - advice.original:+.1f})"
                     + ("  advised" if best else ""), colours[-1]))
    canvas, taken = with_legend(shown, rows, small)
    draw = ImageDraw.Draw(canvas)

    def scaled(box: Box) -> list[int]:
        x0, y0 = min(round(box[0] * scale), pw - 1), min(round(box[1] * scale), ph - 1)
        return [x0, y0, max(x0, round(box[2] * scale) - 1), max(y0, round(box[3] * scale) - 1)]

    if advice.subject is not None and advice.subject.found:
        draw.rectangle(scaled(advice.subject.box), outline=_PET, width=1)
    numbered = list(enumerate(zip(advice.candidates, colours), 1))
    for i, (c, colour) in reversed(numbered):  # the best drawn last, on top
        draw.rectangle(scaled(c.box), outline=colour, width=3 if colour == _ADVISED else 1)
    for i, (c, colour) in numbered:
        tag_box(draw, scaled(c.box), str(i), colour, small, taken, (0, 0, pw - 1, ph - 1))
    return canvas, taken


def crop_preview(advice: CropAdvice, out: str | Path, max_side: int = 640,
                 photo: np.ndarray | None = None) -> Path:
    """Write :func:`preview_image` as a PNG at ``out``; returns ``out``."""
    image, _ = preview_image(advice, photo, max_side)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, "PNG")
    return out


def advise_crops(scorer, paths: Sequence[str | Path], metadata=None, **kwargs) -> list[CropAdvice]:
    """:func:`advise_crop` for each photo in ``paths`` (files and folders); ``metadata`` a CSV path or a
    dict Id -> flags, as for :func:`pawtf.predict.predict`. One photo's failure is that photo's ``error``
    and the others go on.

    Raises:
        ValueError: the scorer predicts no score (:func:`check_scorer`).
    """
    check_scorer(scorer)
    entries = collect_photos(paths)
    found = photo_flags([e.path for e in entries], metadata, scorer.uses_metadata)
    if found.note:
        logger.warning("warning: " + found.note)
    out = []
    for i, entry in enumerate(entries):
        error = entry.error or found.errors.get(i)
        if error:
            out.append(CropAdvice(entry.path, error=error))
            continue
        flags = None if found.flags is None else found.flags[i]
        try:
            out.append(advise_crop(scorer, entry.path, flags, **kwargs))
        except Exception as err:  # noqa: BLE001 (one photo's failure must not stop the others)
            logger.debug("crop advice failed for %s", entry.path, exc_info=True)
            out.append(CropAdvice(entry.path, error=f"{type(err).__name__}: {err}"))
    return out
