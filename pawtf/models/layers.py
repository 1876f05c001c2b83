"""pawtf's own Keras layers that live inside saved models (registered with Keras for loading).

:class:`Preprocess` maps raw 0-255 RGB pixels to what a backbone expects, inside the model, so a saved
or exported model takes plain pixels whatever its backbone (`pawtf.models.backbones` says which mode
each backbone needs).

>>> import numpy as np
>>> Preprocess("tf")(np.array([[0.0, 255.0]])).numpy().tolist()
[[-1.0, 1.0]]
"""

from __future__ import annotations

import keras

__all__ = ["CAFFE_MEAN_BGR", "IMAGENET_MEAN", "IMAGENET_STD", "Preprocess"]

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
