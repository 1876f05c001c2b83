"""Crop advice for photos: score the candidates that keep the pet, advise, save, preview.

See `pawtf.crop` for what the advice does and `pawtf.crop.candidates` for the candidates.

>>> from pawtf.scorers import load_scorer
>>> advice = advise_crop(load_scorer("runs/demo"), "rex.jpg", out_dir="crops")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from pawtf.crop.candidates import ORIGINAL, Box, Candidate, candidate_boxes, salient_region
from pawtf.data.images import ImageError, load_rgb
from pawtf.data.photos import photo_flags, resize_like_training
from pawtf.data.schema import FLAGS
from pawtf.drawing import annotated, font
from pawtf.predict import collect_photos, is_demo_model
from pawtf.runs import DEMO_MODEL_NOTE

__all__ = ["DEFAULT_MIN_GAIN", "DEFAULT_OUT_DIR", "DEFAULT_SALIENCY", "CropAdvice", "advise_crop", "advise_crops",
           "check_saliency", "check_scorer", "crop_preview", "output_stem", "preview_image", "saliency_map",
           "save_crop"]

logger = logging.getLogger(__name__)

DEFAULT_MIN_GAIN = 1.0
#: Where `pawtf crop` saves the advised crops unless told.
DEFAULT_OUT_DIR = "crops"
DEFAULT_SALIENCY = "vanilla"


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
        if self.subject is not None and self.subject.found:  # (not found: the note says so)
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
            salient = salient_region(saliency_map(scorer, photo, flags, saliency), width, height)
            if salient is None:
                notes.append(f"no salient crops: the {saliency} map is flat for this photo")
            else:
                advice.saliency = saliency
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
    rows, boxes = [(f"uncropped {advice.original:.1f}", _PET)], []
    if advice.subject is not None:
        rows.append((f"pet (white box): {advice.subject.note}" if advice.subject.found
                     else advice.subject.note + ": no crop advised", _PET))
        if advice.subject.found:
            boxes.append((advice.subject.box, _PET, 1, None))
    ranked = []
    for i, c in enumerate(advice.candidates, 1):
        best = advice.best is not None and c.name == advice.best.name
        colour = _ADVISED if best else _PALETTE[(i - 1) % len(_PALETTE)]
        rows.append((f"{i} {c.name} {c.score:.1f} ({c.score - advice.original:+.1f})"
                     + ("  advised" if best else ""), colour))
        ranked.append((c.box, colour, 3 if best else 1, str(i)))
    return annotated(Image.fromarray(photo), boxes + ranked[::-1], rows, font(14), max_side)


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
    if is_demo_model(scorer):
        logger.warning(DEMO_MODEL_NOTE)
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
        except Exception as err:
            logger.debug("crop advice failed for %s", entry.path, exc_info=True)
            out.append(CropAdvice(entry.path, error=f"{type(err).__name__}: {err}"))
    return out
