"""Crop advice: would a crop of this photo raise its predicted Pawpularity?

For one photo, :func:`advise_crop` builds a set of candidate crops, scores them all (with the uncropped
photo) in one batch, and advises the best crop when it beats the uncropped photo by at least ``min_gain``
points; that crop is saved at full resolution. Candidates:

``centre_square``      the largest centred square (the model sees square inputs)
``centre_80``          10% trimmed from every side
``thirds_tl/tr/bl/br``  75% of each side, placed so the subject (the saliency centroid, else the centre)
                       sits on one of the crop's rule-of-thirds intersections
``salient``            tight around the most salient region (padded by 15%), from a saliency map of the
                       photo (:mod:`pawtf.explain`, ``vanilla`` gradients by default)
``salient_square``     the square around that region

Saliency needs the Keras model, so with a SavedModel scorer the salient candidates are left out (the other
candidates use the photo's centre as subject). The photo's metadata flags are kept for every crop.

Example:

>>> from pawtf.predict import load_scorer
>>> from pawtf.crop import advise_crop
>>> advice = advise_crop(load_scorer("runs/demo"), "rex.jpg", out_dir="crops")  # doctest: +SKIP
>>> advice.best.name, advice.gain, advice.saved                                 # doctest: +SKIP
('salient', 4.2, PosixPath('crops/rex_crop.jpg'))
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from pawtf.data.images import ImageError, load_rgb
from pawtf.data.photos import photo_flags, resize_like_training
from pawtf.data.schema import FLAGS
from pawtf.drawing import font, label
from pawtf.predict import collect_photos

__all__ = ["DEFAULT_MIN_GAIN", "DEFAULT_OUT_DIR", "DEFAULT_SALIENCY", "ORIGINAL", "Candidate", "CropAdvice", "advise_crop",
           "advise_crops", "candidate_boxes", "check_saliency", "check_scorer", "crop_preview",
           "salient_region", "saliency_map", "save_crop"]

logger = logging.getLogger(__name__)

ORIGINAL = "original"
DEFAULT_MIN_GAIN = 1.0
#: Where `pawtf crop` saves the advised crops unless told.
DEFAULT_OUT_DIR = "crops"
DEFAULT_SALIENCY = "vanilla"
THIRDS_FRACTION = 0.75
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

    ``best`` is the advised crop, or None when no crop raises the score by ``min_gain`` (keep the photo);
    ``gain`` is the best candidate's score minus the uncropped photo's; ``saved`` the crop written.
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

    def summary(self) -> str:
        if self.error:
            return f"{self.path}: not scored: {self.error}"
        lines = [f"{self.path}: uncropped {self.original:.1f}"]
        for c in self.candidates:
            w, h = c.size
            lines.append(f"  {c.name:<15} {c.score:6.1f}  ({c.score - self.original:+.1f})  "
                         f"box {c.box[0]},{c.box[1]} {w}x{h}")
        if self.best is not None:
            lines.append(f"  advice: crop {self.best.name!r}: {self.original:.1f} -> {self.best.score:.1f} "
                         f"({self.gain:+.1f})" + (f", saved to {self.saved}" if self.saved else ""))
        else:
            lines.append(f"  advice: keep the photo as it is (best crop {self.gain:+.1f})")
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Geometry


def _clamp_box(cx: float, cy: float, w: float, h: float, width: int, height: int) -> Box:
    """A w x h box centred on (cx, cy), shifted (not shrunk) to lie inside the photo."""
    w, h = min(max(1, round(w)), width), min(max(1, round(h)), height)
    left = int(round(min(max(cx - w / 2, 0), width - w)))
    top = int(round(min(max(cy - h / 2, 0), height - h)))
    return left, top, left + w, top + h


def candidate_boxes(width: int, height: int, subject: tuple[float, float] | None = None,
                    salient: Box | None = None) -> list[Candidate]:
    """The candidate crops of a ``width`` x ``height`` photo (the uncropped photo first), deduplicated."""
    cx, cy = subject if subject is not None else (width / 2, height / 2)
    out = [Candidate(ORIGINAL, (0, 0, width, height))]
    side = min(width, height)
    out.append(Candidate("centre_square", _clamp_box(width / 2, height / 2, side, side, width, height)))
    out.append(Candidate("centre_80", _clamp_box(width / 2, height / 2, width * CENTRE_FRACTION,
                                                 height * CENTRE_FRACTION, width, height)))
    w, h = width * THIRDS_FRACTION, height * THIRDS_FRACTION
    for name, fx, fy in (("thirds_tl", 1 / 3, 1 / 3), ("thirds_tr", 2 / 3, 1 / 3),
                         ("thirds_bl", 1 / 3, 2 / 3), ("thirds_br", 2 / 3, 2 / 3)):
        # subject at (fx, fy) of the crop: the crop's centre is offset from it
        out.append(Candidate(name, _clamp_box(cx + (0.5 - fx) * w, cy + (0.5 - fy) * h, w, h, width,
                                              height)))
    if salient is not None:
        out.append(Candidate("salient", salient))
        bw, bh = salient[2] - salient[0], salient[3] - salient[1]
        s = min(max(bw, bh), side)
        out.append(Candidate("salient_square", _clamp_box((salient[0] + salient[2]) / 2,
                                                          (salient[1] + salient[3]) / 2, s, s, width,
                                                          height)))
    unique, seen = [], set()
    for c in out:
        if c.box not in seen and c.size[0] >= 1 and c.size[1] >= 1:
            seen.add(c.box)
            unique.append(c)
    return unique


def _smooth(m: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (reflect padding) with plain NumPy."""
    if sigma <= 0:
        return m
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    p = np.pad(m, r, mode="reflect")
    p = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, p)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 1, p)


def _component(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The 4-connected component of ``mask`` holding ``seed`` (iterated constrained dilation)."""
    region = np.zeros_like(mask)
    region[seed] = True
    while True:
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= mask
        if (grown == region).all():
            return region
        region = grown


def salient_region(saliency: np.ndarray, width: int, height: int, *, threshold: float = SALIENT_THRESHOLD,
                   pad: float = SALIENT_PAD, min_fraction: float = SALIENT_MIN_FRACTION
                   ) -> tuple[Box, tuple[float, float]] | None:
    """From a saliency map ``[h, w]`` of the (resized) photo: the box, in photo pixels, tight around the
    most salient region (the smoothed map's connected area above ``threshold`` x its peak, holding the
    peak; padded by ``pad`` of its size; at least ``min_fraction`` of each side), and the saliency-weighted
    centroid of that region. None for a flat map."""
    m = np.nan_to_num(np.asarray(saliency, np.float64))
    mh, mw = m.shape
    m = _smooth(m, sigma=max(mh, mw) / 32)
    peak = m.max()
    if not np.isfinite(peak) or peak <= m.min() + 1e-12:
        return None
    m = (m - m.min()) / (peak - m.min())
    seed = np.unravel_index(int(np.argmax(m)), m.shape)
    region = _component(m >= threshold, seed)
    ys, xs = np.nonzero(region)
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


def advise_crop(scorer, path: str | Path, flags: np.ndarray | None = None, *,
                saliency: str | None = DEFAULT_SALIENCY, min_gain: float = DEFAULT_MIN_GAIN,
                out_dir: str | Path | None = None) -> CropAdvice:
    """Score the candidate crops of the photo at ``path`` in one batch and advise the best one when it
    beats the uncropped photo by ``min_gain`` points; then, with ``out_dir``, save it as
    ``out_dir/<stem>_crop.jpg`` (``.png`` for PNG photos), full resolution. ``flags``: the photo's 12
    flags (zeros when None and the model takes them). ``saliency``: a :mod:`pawtf.explain` method for the
    salient candidates, or None for none. Errors (unreadable photo) are returned in ``error``."""
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
    salient = subject = None
    if saliency:
        if getattr(scorer, "run", None) is None:
            advice.note = ("no salient crops: saliency needs the Keras model; pass the run folder as the "
                           "model instead of a SavedModel")
        else:
            found = salient_region(saliency_map(scorer, photo, flags, saliency), width, height)
            if found is None:
                advice.note = f"no salient crops: the {saliency} map is flat for this photo"
            else:
                salient, subject = found
                advice.saliency = saliency
    candidates = candidate_boxes(width, height, subject, salient)
    crops = [photo[c.box[1]:c.box[3], c.box[0]:c.box[2]] for c in candidates]
    meta = None if not scorer.uses_metadata else np.repeat(flags[None], len(crops), 0)
    scores = scorer.score_arrays(crops, meta)  # one batch: every candidate and the uncropped photo
    for c, s in zip(candidates, scores):
        c.score = float(s)
    advice.original = candidates[0].score
    others = sorted(candidates[1:], key=lambda c: -c.score)
    advice.candidates = others
    if others:
        top = others[0]
        advice.gain = top.score - advice.original
        if advice.gain >= min_gain:
            advice.best = top
            if out_dir is not None:
                advice.saved = save_crop(photo, top.box, Path(out_dir), Path(path))
    return advice


def save_crop(photo: np.ndarray, box: Box, out_dir: Path, source: Path) -> Path:
    """Write the crop ``box`` of ``photo`` as ``out_dir/<stem>_crop.<jpg|png>`` (replacing an older one)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    crop = Image.fromarray(photo[box[1]:box[3], box[0]:box[2]])
    if source.suffix.lower() == ".png":
        out = out_dir / f"{source.stem}_crop.png"
        crop.save(out, "PNG")
    else:
        out = out_dir / f"{source.stem}_crop.jpg"
        crop.save(out, "JPEG", quality=95)
    return out


def crop_preview(advice: CropAdvice, out: str | Path, max_side: int = 640) -> Path:
    """The photo with every candidate box drawn and labelled with its score (the advised one in green)."""
    from PIL import ImageDraw

    img = Image.fromarray(load_rgb(advice.path))
    scale = min(1.0, max_side / max(img.size))
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(img)
    small = font(14)
    for c in reversed(advice.candidates):
        best = advice.best is not None and c.name == advice.best.name
        colour = (40, 200, 70) if best else (255, 210, 0)
        box = [round(v * scale) for v in c.box]
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=colour, width=3 if best else 1)
        label(draw, (box[0] + 4, box[1] + 2), f"{c.name} {c.score:.1f}", colour, small)
    label(draw, (4, img.height - 20), f"uncropped {advice.original:.1f}", (255, 255, 255), small)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, "PNG")
    return out


def advise_crops(scorer, paths: Sequence[str | Path], metadata=None, **kwargs) -> list[CropAdvice]:
    """:func:`advise_crop` for each photo in ``paths`` (files and folders); ``metadata`` a CSV path or a
    dict Id -> flags, as for :func:`pawtf.predict.predict`."""
    entries = collect_photos(paths)
    found = photo_flags([e.path for e in entries], metadata, scorer.uses_metadata)
    if found.note:
        logger.warning("warning: " + found.note)
    out = []
    for i, entry in enumerate(entries):
        error = entry.error or found.errors.get(i)
        if error:
            out.append(CropAdvice(entry.path, error=error))
        else:
            flags = None if found.flags is None else found.flags[i]
            out.append(advise_crop(scorer, entry.path, flags, **kwargs))
    return out
