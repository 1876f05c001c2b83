"""LIME for images (Ribeiro et al. 2016, the ``lime`` package's ``LimeImageExplainer``) on one target value.

The photo is cut into superpixels; ``samples`` copies of it with random superpixels hidden go through the
model (the photo's metadata held fixed, ``batch_size`` copies per forward pass); a ridge regression of the
target (the score by default, `~pawtf.explain.base.Target` picks a flag's or a bucket's probability: LIME
regresses any number, not only class probabilities; ``classifier_fn`` returns it as ``[n, 1]``, label 0),
weighted by each copy's closeness to the photo, gives every superpixel a weight. The map paints each
superpixel's weight onto its pixels (``explanation.local_exp``).

Segmentation: SLIC (``skimage.segmentation.slic``, about ``segments`` superpixels, default 50, compactness
10, on the photo scaled to [0, 1]) rather than LIME's default quickshift (``kernel_size=4``): quickshift's
segment count follows the photo's texture (from a handful on a flat demo photo to a few hundred on a busy
one), and LIME's ridge needs several times more samples than superpixels to be stable at a few hundred
samples. SLIC's superpixels follow colour edges as quickshift's do, with a count fixed in advance; 50 at
224 px are about 30 x 30 pixels each.

Hidden superpixels are set to black (``hide_color=0``, as in LIME's image tutorial, RISE's masks and the
deletion game). LIME's own default fills each superpixel with its mean colour, which changes little where a
superpixel is flat, so hiding it would barely move the prediction.

As for SHAP (`pawtf.explain.shap_partition`), the map keeps the **positive** weights (what raised the
target; negative evidence at 0, as RISE and Grad-CAM show it); ``attributions="absolute"`` gives ``|.|``.
The random superpixel draws come from ``seed`` (LIME's ``random_state``): same seed, same map.

>>> from pawtf.explain import make_explainer                        # doctest: +SKIP
>>> maps = make_explainer("lime", model, samples=300)(images, metadata)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from pawtf.config import ExplainConfig
from pawtf.explain.base import Explainer
from pawtf.explain.shap_partition import ATTRIBUTIONS, positive_or_absolute

__all__ = ["LimeImage", "superpixels"]

_DEFAULTS = ExplainConfig()


def superpixels(image: np.ndarray, segments: int = 50, seed: int = 0) -> np.ndarray:
    """SLIC superpixel labels ``[H, W]`` (0..k-1) of ``image`` [H, W, 3] (0-255)."""
    from skimage.segmentation import slic

    image = np.clip(np.asarray(image, np.float64) / 255.0, 0.0, 1.0)
    labels = slic(image, n_segments=int(segments), compactness=10.0, sigma=1.0, start_label=0,
                  channel_axis=-1)
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)  # consecutive labels


def _explainer_class(lime_image):
    """``LimeImageExplainer`` with its ``data_labels`` done in whole batches: the same random draws and
    the same perturbed photos, without its progress bar (one per photo, on stderr) or its per-superpixel
    loop over every sample."""

    class _Batched(lime_image.LimeImageExplainer):
        def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples, batch_size=10):
            n_features = np.unique(segments).shape[0]
            data = self.random_state.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
            data[0, :] = 1
            labels = []
            for start in range(0, num_samples, batch_size):
                keep = data[start:start + batch_size][:, segments][..., None].astype(bool)  # [b, H, W, 1]
                labels.append(classifier_fn(np.where(keep, image[None], fudged_image[None])))
            return data, np.concatenate(labels)

    return _Batched


class LimeImage(Explainer):
    """LIME's image explainer on the target value; see the module docstring. ``samples`` perturbed photos
    per photo (default `pawtf.config.ExplainConfig.lime_samples`), ``segments`` SLIC superpixels (about),
    ``batch_size`` perturbed photos per forward pass, ``attributions`` ``positive`` (default) or
    ``absolute``."""

    name = "lime"
    label = "LIME"
    random = True

    def __init__(self, model, target=None, *, samples: int = _DEFAULTS.lime_samples, segments: int = 50,
                 attributions: str = "positive", seed: int = _DEFAULTS.seed, batch_size: int = 64):
        super().__init__(model, target, seed=seed, batch_size=batch_size)
        if samples < 2:
            raise ValueError(f"samples must be >= 2, got {samples}")
        if segments < 2:
            raise ValueError(f"segments must be >= 2, got {segments}")
        if attributions not in ATTRIBUTIONS:
            raise ValueError(f"unknown attributions {attributions!r}; expected one of {ATTRIBUTIONS}")
        self.samples, self.segments, self.attributions = int(samples), int(segments), attributions
        #: The superpixels of each photo of the last call, ``[H, W]`` labels.
        self.last_segments: list[np.ndarray] = []

    def explain(self, images, metadata):
        from lime import lime_image  # slow to import: only when LIME is asked for

        maps, self.last_segments = [], []
        for i, image in enumerate(images):
            meta = None if metadata is None else metadata[i:i + 1]

            def classifier_fn(batch, meta=meta):
                batch = np.asarray(batch, np.float32)
                m = None if meta is None else np.repeat(meta, len(batch), axis=0)
                return self.predict(batch, m)[:, None]

            segments = superpixels(image, self.segments, self.seed)
            explainer = _explainer_class(lime_image)(random_state=self.seed)
            explanation = explainer.explain_instance(
                image.astype(np.float64), classifier_fn, labels=(0,), top_labels=None, hide_color=0,
                num_features=int(segments.max()) + 1, num_samples=self.samples, batch_size=self.batch_size,
                segmentation_fn=lambda _image, segments=segments: segments, random_seed=self.seed)
            weights = np.zeros(int(segments.max()) + 1)
            for segment, weight in explanation.local_exp[0]:
                weights[segment] = weight
            maps.append(positive_or_absolute(weights[segments], self.attributions))
            self.last_segments.append(segments)
        return np.stack(maps)
