"""Toy models whose saliency is known (imported by name: pytest puts this folder on sys.path)."""

import keras
import numpy as np

from pawtf.data.schema import FLAGS
from pawtf.models.backbones import FEATURES_LAYER

SIZE = 32  # toy image side; the "important" quadrant is the top-left SIZE/2 x SIZE/2


def quadrant_model(use_metadata: bool = True) -> keras.Model:
    """A flat two-input model whose score is 100 * (mean of the top-left quadrant's pixels / 255) plus
    the sum of the metadata flags, through a ReLU output: the top-left quadrant is all that matters,
    and it matters linearly. It has a FEATURES_LAYER so Grad-CAM can run on it."""
    image = keras.Input((SIZE, SIZE, 3), name="image")
    half = SIZE // 2
    quadrant = keras.layers.Cropping2D(((0, half), (0, half)), name="crop")(image)
    feats = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(
        1.0 / 3.0), name="conv")(quadrant)
    feats = keras.layers.Identity(name=FEATURES_LAYER)(feats)
    mean = keras.layers.GlobalAveragePooling2D(name="pool")(feats)
    score = keras.layers.Rescaling(100.0 / 255.0, name="scale")(mean)
    inputs = [image]
    if use_metadata:
        metadata = keras.Input((len(FLAGS),), name="metadata")
        inputs.append(metadata)
        flags = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", name="flags")(metadata)
        score = keras.layers.Add(name="fusion")([score, flags])
    output = keras.layers.ReLU(name="pawpularity")(score)
    return keras.Model(inputs, output, name="quadrant")


def quadrant_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[: SIZE // 2, : SIZE // 2] = True
    return mask
