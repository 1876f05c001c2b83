"""Augmented views for the oversampled copies, as a Keras layer that runs on the accelerator.

An oversampled training copy is an integer *view* code beside its image (`pawtf.data.views`): the code's
bits say which of the study's transforms it gets. `ViewAugment` applies them per sample inside the training graph (so on the
GPU when there is one) and is the identity at inference (``training=False``), so validation, prediction,
explanation and serving never see augmented pixels.

Example:

>>> import numpy as np
>>> from pawtf.data.augment import ViewAugment
>>> from pawtf.data.views import view_code
>>> images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
>>> views = np.array([0, view_code(["flip"])], dtype="int32")
>>> out = ViewAugment()([images, views], training=True)
>>> bool(np.allclose(out[1], images[1, :, ::-1]))
True
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from pawtf.data.views import VIEWS

__all__ = ["ViewAugment", "gaussian_kernel"]

def gaussian_kernel(sigma: float) -> list[float]:
    """A normalised 1-D Gaussian kernel with radius ceil(3 sigma) (at least 1)."""
    radius = max(1, math.ceil(3 * sigma))
    weights = [math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-radius, radius + 1)]
    total = sum(weights)
    return [w / total for w in weights]


@keras.saving.register_keras_serializable(package="pawtf")
class ViewAugment(keras.layers.Layer):
    """Apply each sample's view: horizontal flip (bit 1); 90% centre crop resized back + Gaussian blur
    (bit 2). Called on ``[images, views]``; returns images unchanged unless ``training`` is true."""

    def __init__(self, crop_fraction: float = 0.9, blur_sigma: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        self.crop_fraction = crop_fraction
        self.blur_sigma = blur_sigma

    def call(self, inputs, training=None):
        images, views = inputs
        if not training:
            return images
        views = tf.reshape(tf.cast(views, tf.int32), [-1])

        def where(bit, transformed, original):
            mask = tf.reshape(tf.bitwise.bitwise_and(views, bit) > 0, [-1, 1, 1, 1])
            return tf.where(mask, transformed, original)

        images = where(VIEWS["flip"], tf.reverse(images, axis=[2]), images)
        images = where(VIEWS["crop_blur"], self._crop_blur(images), images)
        return images

    def _crop_blur(self, images):
        cropped = self._centre_crop(images)
        k = tf.constant(gaussian_kernel(self.blur_sigma), dtype=images.dtype)
        channels = images.shape[-1] or 3
        kx = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, channels, 1])
        ky = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, channels, 1])
        r = (len(gaussian_kernel(self.blur_sigma)) - 1) // 2
        padded = tf.pad(cropped, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
        blurred = tf.nn.depthwise_conv2d(padded, kx, [1, 1, 1, 1], "VALID")
        return tf.nn.depthwise_conv2d(blurred, ky, [1, 1, 1, 1], "VALID")

    def _centre_crop(self, images):
        """The centre `crop_fraction` of each image resized back to its size, bilinear: the values of
        ``tf.image.crop_and_resize`` with that box, as gathers XLA can compile (it has no kernel for
        CropAndResize, so ``--xla on`` could not train)."""
        margin = (1.0 - self.crop_fraction) / 2.0
        for axis in (1, 2):
            size = images.shape[axis] or tf.shape(images)[axis]
            steps = tf.cast(tf.range(size), images.dtype)
            last = tf.cast(size - 1, images.dtype)
            position = (margin + steps * (1.0 - 2.0 * margin) / tf.maximum(last, 1.0)) * last
            low = tf.floor(position)
            high = tf.minimum(low + 1.0, last)
            shape = [1, -1, 1, 1] if axis == 1 else [1, 1, -1, 1]
            weight = tf.reshape(position - low, shape)
            below = tf.gather(images, tf.cast(low, tf.int32), axis=axis)
            above = tf.gather(images, tf.cast(high, tf.int32), axis=axis)
            images = below + (above - below) * weight
        return images

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "crop_fraction": self.crop_fraction,
                "blur_sigma": self.blur_sigma}
