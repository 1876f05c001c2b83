"""Class-activation maps: Grad-CAM and Grad-CAM++, through tf-keras-vis, on the backbone's feature map.

Every popularity model carries an identity layer named :data:`pawtf.models.backbones.FEATURES_LAYER` on
its backbone's last feature map (the registry puts it there for every backbone), and the backbone is
built flat, so tf-keras-vis can reach it without branching on backbone names. With a two-input model
tf-keras-vis cannot expand the CAM to the image (``expand_cam=True`` zooms it to *every* input, the
metadata vector included, and fails), so the CAM comes back at the feature map's size and is upsampled
bilinearly to the photo here. The layer is handed to tf-keras-vis as a layer, not a name: its name
search descends into nested models, and a feature head's second backbone (nested) has a layer of the
same name. tf-keras-vis's own normalisation (``+ 1e-7`` in the denominator) would
flatten maps whose values are tiny, so it is off and :func:`pawtf.explain.base.normalize_maps` does it.

Grad-CAM++ was derived for ``Y = exp(S)`` with ``S`` a class logit; here ``S`` is the target before the
output's final ReLU/sigmoid (:class:`pawtf.explain.base.Target` with ``linear=True``, about score/100
for an ``mse`` model), which keeps tf-keras-vis's ``exp(S)`` finite.

tf-keras-vis's ScoreCAM is deliberately not offered: it weights feature maps by a *softmax* over the
model's outputs, and the softmax of a single regression unit is always 1, so every ScoreCAM map of this
model is the same meaningless sum of feature maps.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

from pawtf.explain.base import resize_maps
from pawtf.explain.gradients import _GradientExplainer
from pawtf.models.backbones import FEATURES_LAYER

__all__ = ["GradCAM", "GradCAMPlusPlus"]


class GradCAM(_GradientExplainer):
    """Selvaraju et al. 2017: ReLU of the gradient-weighted sum of the feature maps of ``layer``."""

    name = "gradcam"
    label = "Grad-CAM"
    _visualizer = Gradcam

    def __init__(self, model, target=None, *, layer: str = FEATURES_LAYER, seed: int = 0,
                 batch_size: int = 16):
        super().__init__(model, target, seed=seed, batch_size=batch_size)
        try:
            feature_map = self.target_model.get_layer(layer).output
        except ValueError:
            raise ValueError(f"model has no layer {layer!r} on the path to its output; pawtf models carry "
                             f"{FEATURES_LAYER!r} (a feature head or ensemble: its first backbone's), but "
                             "this one holds its backbones inside (a feature head or ensemble made before Grad-CAM reached them?): "
                             "explain it with --methods vanilla,smoothgrad,rise, or train it again") from None
        if len(feature_map.shape) != 4:
            raise ValueError(f"layer {layer!r} must output a feature map [N, h, w, C], got "
                             f"{feature_map.shape}")
        self.layer = layer

    def cams(self, images: np.ndarray, metadata: np.ndarray | None) -> np.ndarray:
        """Raw CAMs at the feature map's resolution, ``[N, h, w]``."""
        visualizer = self._visualizer(self.target_model, clone=False)
        out = []
        for sl in self.batches(len(images)):
            seed = self.model_inputs(tf.constant(images[sl]),
                                     None if metadata is None else tf.constant(metadata[sl]))
            cam = visualizer(self.score, seed if len(seed) > 1 else seed[0],
                             penultimate_layer=self.target_model.get_layer(self.layer),
                             seek_penultimate_conv_layer=False,
                             expand_cam=False, normalize_cam=False)
            out.append(np.asarray(cam, dtype=np.float32))
        return np.concatenate(out)

    def explain(self, images, metadata):
        return resize_maps(self.cams(images, metadata), images.shape[1:3])


class GradCAMPlusPlus(GradCAM):
    """Chattopadhyay et al. 2018: Grad-CAM with pixel-wise weights from higher-order gradients."""

    name = "gradcam++"
    label = "Grad-CAM++"
    _visualizer = GradcamPlusPlus
