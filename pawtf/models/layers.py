"""pawtf's own Keras layers that live inside saved models (registered with Keras for loading).

:class:`Preprocess` maps raw 0-255 RGB pixels to what a backbone expects, inside the model, so a saved
or exported model takes plain pixels whatever its backbone (`pawtf.models.backbones` says which mode
each backbone needs). :class:`KernelRegression` is a fitted RBF-kernel regression (scikit-learn's SVR)
as Keras ops, so an SVR head serves in TF Serving with no Python. :class:`SelectFeatures` keeps the
columns a feature selection chose (the rater's genetic selection).

>>> import numpy as np
>>> Preprocess("tf")(np.array([[0.0, 255.0]])).numpy().tolist()
[[-1.0, 1.0]]
"""

from __future__ import annotations

import keras

__all__ = ["CAFFE_MEAN_BGR", "IMAGENET_MEAN", "IMAGENET_STD", "KernelRegression", "Preprocess", "SelectFeatures"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="pawtf")
class Preprocess(keras.layers.Layer):
    """Map raw 0-255 RGB pixels to what a backbone expects, inside the model.

    Modes: ``caffe`` (RGB->BGR, minus the ImageNet BGR mean), ``tf`` (to [-1, 1]), ``torch`` (to [0, 1],
    then ImageNet mean/std), ``lite`` ((x - 127) / 128, EfficientNet-Lite), ``none`` (identity: the
    backbone preprocesses itself).
    """

    MODES = ("caffe", "tf", "torch", "lite", "none")

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {self.MODES}")
        self.mode = mode

    def call(self, x):
        ops = keras.ops
        if self.mode == "caffe":
            return x[..., ::-1] - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=x.dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(IMAGENET_MEAN, dtype=x.dtype)
            std = ops.convert_to_tensor(IMAGENET_STD, dtype=x.dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "lite":
            return (x - 127.0) / 128.0
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="pawtf")
class KernelRegression(keras.layers.Layer):
    """An RBF-kernel regression's prediction: ``sum_i coef_i * exp(-gamma * |x - s_i|^2) + intercept``
    over ``n_support`` support vectors ``s_i`` (stored as weights; set them with ``set_weights``).

    >>> import numpy as np
    >>> layer = KernelRegression(n_support=2, gamma=0.5)
    >>> layer.build((None, 3))
    >>> layer.set_weights([np.eye(2, 3, dtype="float32"), np.array([[1.0], [-1.0]], "float32"),
    ...                    np.array([10.0], "float32")])
    >>> float(layer(np.array([[1.0, 0.0, 0.0]], "float32"))[0, 0])  # 1 - exp(-1) + 10  # doctest: +ELLIPSIS
    10.6321...
    """

    def __init__(self, n_support: int, gamma: float, **kwargs):
        super().__init__(**kwargs)
        self.n_support, self.gamma = int(n_support), float(gamma)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.support = self.add_weight(shape=(self.n_support, dim), initializer="zeros", trainable=False,
                                       name="support_vectors")
        self.coef = self.add_weight(shape=(self.n_support, 1), initializer="zeros", trainable=False,
                                    name="dual_coef")
        self.intercept = self.add_weight(shape=(1,), initializer="zeros", trainable=False, name="intercept")

    def call(self, x):
        ops = keras.ops
        distances = (ops.sum(x * x, axis=-1, keepdims=True)
                     - 2.0 * ops.matmul(x, ops.transpose(self.support))
                     + ops.sum(self.support * self.support, axis=-1)[None, :])
        kernel = ops.exp(-self.gamma * ops.maximum(distances, 0.0))
        return ops.matmul(kernel, self.coef) + self.intercept

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        return {**super().get_config(), "n_support": self.n_support, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="pawtf")
class SelectFeatures(keras.layers.Layer):
    """The columns `indices` of a feature tensor [batch, n], in that order (a fitted feature selection).

    >>> import numpy as np
    >>> SelectFeatures([2, 0])(np.array([[1.0, 2.0, 3.0]], "float32")).numpy().tolist()
    [[3.0, 1.0]]
    """

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, x):
        return keras.ops.take(x, keras.ops.convert_to_tensor(self.indices, dtype="int32"), axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.indices))

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}
