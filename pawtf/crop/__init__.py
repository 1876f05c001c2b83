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
>>> from pawtf.crop import advise_crop, min_crop_size
>>> advice = advise_crop(load_scorer("runs/demo"), "rex.jpg", out_dir="crops")  # doctest: +SKIP
>>> advice.best.name, advice.gain, advice.saved.name                            # doctest: +SKIP
('thirds_tl', 4.2, 'rex-1b2c3d4e_crop.jpg')
>>> min_crop_size(400, 300), min_crop_size(1000, 800), min_crop_size(2, 4000)
((224, 224), (400, 400), (2, 224))
"""

from pawtf.crop.advice import (DEFAULT_MIN_GAIN, DEFAULT_OUT_DIR, DEFAULT_SALIENCY, CropAdvice, advise_crop,
                               advise_crops, check_saliency, check_scorer, crop_preview, output_stem,
                               preview_image, saliency_map, save_crop)
from pawtf.crop.candidates import (MIN_CROP_SIDE, ORIGINAL, PET_MARGIN, Candidate, candidate_boxes, keep_box,
                                   min_crop_size, salient_region)

__all__ = ["DEFAULT_MIN_GAIN", "DEFAULT_OUT_DIR", "DEFAULT_SALIENCY", "MIN_CROP_SIDE", "ORIGINAL",
           "PET_MARGIN", "Candidate", "CropAdvice", "advise_crop", "advise_crops", "candidate_boxes",
           "check_saliency", "check_scorer", "crop_preview", "keep_box", "min_crop_size", "output_stem",
           "preview_image", "saliency_map", "salient_region", "save_crop"]
