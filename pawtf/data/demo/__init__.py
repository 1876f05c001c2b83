"""Synthetic PetFinder-like demo dataset: cartoon pets with a known scoring rule.

Real PetFinder.my photos cannot be downloaded offline, so pawtf generates a
small stand-in dataset in the Kaggle layout.  It is the default data for the
README's first commands, the data of the tests, and the ground truth for the
saliency evaluation (each image comes with a mask of the regions that drive
its score).

Each image is a scene sampled with a per-image random generator, labelled and
drawn; the modules follow those steps:

* :mod:`~pawtf.data.demo.scene`: the scene model (background; one pet, a group
  or a collage; species, scale, contrast, eyes, face, tongue, accessory, pose;
  occlusion, a hand, text, blur) and its sampling;
* :mod:`~pawtf.data.demo.labels`: what a scene is labelled with: the 12 Kaggle
  flags, the latent attributes and the score, whose formula (single, near,
  high-contrast, clearly visible subjects with both eyes and a tongue out score
  high; groups, collages, blur, occlusion, odd poses, hands and text score low)
  is defined once there and recorded as :data:`FORMULA` in ``demo.json``;
* :mod:`~pawtf.data.demo.draw`: the image and its mask, drawn with PIL;
* :mod:`~pawtf.data.demo.dataset`: :func:`make_demo` writes the dataset.

Example
-------
>>> from pawtf.data.demo import make_demo
>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> info = make_demo(out, n=8, size=64, seed=0, progress=False)
>>> info["n"], info["size"], info["noise_sigma"]
(8, 64, 4.5)

Or from the shell: ``pawtf demo-data --out data/demo`` (defaults:
``DEFAULT_N`` images of ``DEFAULT_SIZE`` px, about 15 s on 2 CPU cores).

The folder then holds ``train.csv`` (``Id``, 12 flags, ``Pawpularity``),
``train/<Id>.jpg``, ``masks/<Id>.png`` (0/255), ``attributes.csv`` (the
latent attributes and ``clean_score``) and ``demo.json``.
"""

from pawtf.data.demo.dataset import (
    ATTRIBUTE_COLUMNS,
    DEFAULT_N,
    DEFAULT_SEED,
    DEFAULT_SIZE,
    VERSION,
    flags_linear_cv_rmse,
    generate_sample,
    is_demo_dir,
    make_demo,
)
from pawtf.data.demo.labels import FORMULA, NEAR_THRESHOLD, NOISE_SIGMA

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "DEFAULT_N",
    "DEFAULT_SEED",
    "DEFAULT_SIZE",
    "FORMULA",
    "NEAR_THRESHOLD",
    "NOISE_SIGMA",
    "VERSION",
    "flags_linear_cv_rmse",
    "generate_sample",
    "is_demo_dir",
    "make_demo",
]
