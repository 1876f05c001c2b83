"""Gradient maps: vanilla gradient and SmoothGrad, through tf-keras-vis ``Saliency``.

Both explain the target (the score by default) with the photo's metadata held fixed: the map of a pixel is
``max over RGB of |d target / d pixel|`` (tf-keras-vis's default), normalised per image.

SmoothGrad averages these absolute gradients over ``samples`` noisy copies of the photo (Gaussian noise of
standard deviation ``noise * (max - min)`` of the photo, tf-keras-vis's convention). The noise is drawn here
rather than by tf-keras-vis's own ``smooth_samples`` loop, because that loop (0.8.x) adds the noise to
*every* input, metadata flags included, and draws it from NumPy's global generator (unseeded); each noisy
batch then goes through the same tf-keras-vis ``Saliency`` call as the vanilla gradient.

>>> from pawtf.explain import SmoothGrad           # doctest: +SKIP
>>> maps = SmoothGrad(model, samples=25, seed=1)(images, metadata)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_keras_vis.saliency import Saliency

import keras
from pawtf.explain.base import Explainer, Target, pre_activation_tensor

__all__ = ["SmoothGrad", "VanillaGradient", "target_model"]


def target_model(model: keras.Model, target: Target) -> keras.Model:
    """A flat model with the same inputs whose one output is what gradient methods differentiate:
    the chosen output, or with ``target.linear`` the tensor before its final ReLU/sigmoid/rescaling."""
    index = target.output_index(model)
    tensor = pre_activation_tensor(model, index) if target.linear else model.outputs[index]
    return keras.Model(model.inputs, tensor, name=f"{model.name}_target")


class _GradientExplainer(Explainer):
    """Shared by the gradient methods: the target model and the tf-keras-vis score function."""

    def __init__(self, model, target=None, *, seed=0, batch_size=16):
        super().__init__(model, target, seed=seed, batch_size=batch_size)
        self.target_model = target_model(model, self.target)
        target = self.target
        self.score = lambda output: target.select(output)

    def gradients(self, images: np.ndarray, metadata: np.ndarray | None) -> np.ndarray:
        """``max_c |d target / d pixel|`` for each image, ``[N, H, W]``, in batches (tf-keras-vis)."""
        saliency = Saliency(self.target_model, clone=False)
        out = []
        for sl in self.batches(len(images)):
            seed = self.model_inputs(tf.constant(images[sl]),
                                     None if metadata is None else tf.constant(metadata[sl]))
            grads = saliency(self.score, seed if len(seed) > 1 else seed[0], normalize_map=False,
                             keepdims=False)
            grads = grads[self.input_names.index("image")] if isinstance(grads, list) else grads
            out.append(np.asarray(grads, dtype=np.float32))
        return np.concatenate(out)


class VanillaGradient(_GradientExplainer):
    """Simonyan et al. 2013: the absolute gradient of the target with respect to each pixel."""

    name = "vanilla"
    label = "vanilla gradient"

    def explain(self, images, metadata):
        return self.gradients(images, metadata)


class SmoothGrad(_GradientExplainer):
    """Smilkov et al. 2017: absolute gradients averaged over ``samples`` noisy copies (seeded)."""

    name = "smoothgrad"
    label = "SmoothGrad"
    random = True

    def __init__(self, model, target=None, *, samples: int = 20, noise: float = 0.2, seed: int = 0,
                 batch_size: int = 16):
        super().__init__(model, target, seed=seed, batch_size=batch_size)
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.samples, self.noise = int(samples), float(noise)

    def explain(self, images, metadata):
        total = np.zeros(images.shape[:3], np.float64)
        sigma = self.noise * (images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3)))
        rng = np.random.default_rng(self.seed)  # same seed and inputs: same noise, same maps
        for _ in range(self.samples):
            noise = rng.standard_normal(images.shape, dtype=np.float32)
            noisy = images + noise * sigma[:, None, None, None].astype(np.float32)
            total += self.gradients(noisy, metadata)
        return total / self.samples
