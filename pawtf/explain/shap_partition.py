"""SHAP's Partition explainer (Lundberg & Lee 2017; the hierarchical Owen values of ``shap``) over images.

The photo is split recursively into axis-aligned halves (``shap.maskers.Image``'s partition tree, down to
single pixels and channels); each part's value is what it adds to the target (the score by default,
`~pawtf.explain.base.Target` picks a flag's or a bucket's probability) when it is shown instead of a
heavily blurred copy of the photo, with the photo's metadata held fixed. ``max_evals`` bounds the forward
passes per photo: the explainer refines the parts that matter most first, so a small budget gives a coarse
map (big blocks) and a larger one finer detail. The masked photos go through the model ``batch_size`` at a
time.

Hidden parts are replaced by a box blur of the photo (``blur`` pixels square; default 128 at 224 px, as in
SHAP's image examples' ``"blur(128,128)"``, scaled with the photo's side). SHAP's string maskers
(``"blur(...)"``, ``"inpaint_telea"``) need OpenCV, which nothing else here needs; the blurred copy is
computed here (SciPy's box filter, mirrored at the borders as ``cv2.blur`` does) and handed to the masker as
its background, which gives the same masking.

The map is each pixel's attribution summed over RGB, **positive part only**: what raised the target.
Negative evidence (parts that pulled it down) is left at 0, as RISE (whose normalised map puts it lowest)
and Grad-CAM (ReLU) do; only the gradient methods take ``|.|``, because a gradient's sign is the local
slope, not which way the pixel pushed the prediction. The maps are scored by insertion (pixels ranked
first should raise the target), and ranking negative evidence first would mark down a correct map.
``attributions="absolute"`` gives ``|.|`` instead ("what moved the prediction either way").

The Partition explainer draws no random numbers (the same photo, budget and blur give the same map); the
``seed`` is taken for a common signature.

>>> from pawtf.explain import make_explainer                        # doctest: +SKIP
>>> maps = make_explainer("shap", model, max_evals=300)(images, metadata)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pawtf.config import ExplainConfig
from pawtf.explain.base import Explainer

__all__ = ["ATTRIBUTIONS", "PartitionSHAP", "box_blur"]

_DEFAULTS = ExplainConfig()
#: How signed attributions become a map: what raised the target, or what moved it either way.
ATTRIBUTIONS = ("positive", "absolute")


def box_blur(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` [H, W, 3] blurred by a ``size x size`` box (``cv2.blur``'s border: mirrored, edge once).

    >>> float(box_blur(np.arange(9.).reshape(3, 3, 1).repeat(3, 2), 3)[1, 1, 0])  # the 3 x 3 mean
    4.0
    """
    size = max(1, int(size))
    return ndimage.uniform_filter(np.asarray(image, np.float32), size=(size, size, 1), mode="mirror")


def positive_or_absolute(values: np.ndarray, attributions: str) -> np.ndarray:
    """Signed attributions -> the map's raw values (``positive``: max(v, 0); ``absolute``: |v|)."""
    return np.abs(values) if attributions == "absolute" else np.maximum(values, 0.0)


class PartitionSHAP(Explainer):
    """SHAP's Partition explainer with an image masker (a blurred copy of the photo); see the module
    docstring. ``max_evals`` forward passes per photo (default `pawtf.config.ExplainConfig.shap_evals`),
    ``batch_size`` masked photos per forward pass, ``blur`` the box side in pixels (None: 128 at 224 px),
    ``attributions`` ``positive`` (default) or ``absolute``."""

    name = "shap"
    label = "SHAP (partition)"

    def __init__(self, model, target=None, *, max_evals: int = _DEFAULTS.shap_evals, blur: int | None = None,
                 attributions: str = "positive", seed: int = _DEFAULTS.seed, batch_size: int = 64):
        super().__init__(model, target, seed=seed, batch_size=batch_size)
        if max_evals < 3:
            raise ValueError(f"max_evals must be >= 3, got {max_evals}")
        if blur is not None and blur < 1:
            raise ValueError(f"blur must be >= 1 pixel (or None), got {blur}")
        if attributions not in ATTRIBUTIONS:
            raise ValueError(f"unknown attributions {attributions!r}; expected one of {ATTRIBUTIONS}")
        self.max_evals, self.blur, self.attributions = int(max_evals), blur, attributions

    def blur_size(self, height: int, width: int) -> int:
        return self.blur or max(1, round(128 * max(height, width) / 224))

    def explain(self, images, metadata):
        import shap  # slow to import: only when SHAP is asked for

        maps = []
        for i, image in enumerate(images):
            meta = None if metadata is None else metadata[i:i + 1]

            def predict(batch, meta=meta):
                batch = np.asarray(batch, np.float32)
                m = None if meta is None else np.repeat(meta, len(batch), axis=0)
                return self.predict(batch, m)

            background = box_blur(image, self.blur_size(*image.shape[:2]))
            masker = shap.maskers.Image(background, image.shape)
            explainer = shap.explainers.Partition(predict, masker)
            explanation = explainer(image[None], max_evals=self.max_evals, batch_size=self.batch_size,
                                    silent=True)
            values = np.asarray(explanation.values, np.float64).reshape(image.shape)
            maps.append(positive_or_absolute(values.sum(axis=-1), self.attributions))
        return np.stack(maps)
