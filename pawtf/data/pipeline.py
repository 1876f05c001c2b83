"""tf.data pipelines for training, validation and prediction.

One path for every source: a table with `path`, the 12 flags and (for training) `Pawpularity` becomes
``({"image": float32 [H, W, 3] in 0-255, "metadata": float32 [12], "view": int32}, score)`` batches.
Images are decoded in parallel by the safe reader (EXIF, CMYK, alpha handled), resized to the size the
caller gives (the backbone's, from the registry), cached as uint8, then shuffled, batched and prefetched.
Backbone preprocessing happens inside the model, so the pipeline knows nothing of models.

Example:

>>> from pawtf.data.pipeline import make_dataset
>>> ds = make_dataset(table, image_size=224, batch_size=32, training=True)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from pawtf.data.images import load_rgb
from pawtf.data.schema import FLAGS, TARGET_COLUMN
from pawtf.data.split import VIEW_COLUMN

__all__ = ["AUTOTUNE", "decode", "make_dataset", "metadata_array"]

AUTOTUNE = tf.data.AUTOTUNE


def decode(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read one image file into a uint8 [S, S, 3] tensor (PIL in a tf.numpy_function)."""

    def read(p):
        return load_rgb(p.decode(), size=(image_size, image_size))

    image = tf.numpy_function(read, [path], tf.uint8, stateful=False)
    image.set_shape([image_size, image_size, 3])
    return image


def metadata_array(table: pd.DataFrame) -> np.ndarray:
    """The 12 flags as float32 [n, 12] (zeros when the table has no flags)."""
    if all(f in table for f in FLAGS):
        return table[list(FLAGS)].to_numpy(dtype=np.float32)
    return np.zeros((len(table), len(FLAGS)), np.float32)


def make_dataset(table: pd.DataFrame, image_size: int, batch_size: int = 32, *,
                 training: bool = False, with_view: bool | None = None, with_target: bool | None = None,
                 with_metadata: bool = True, seed: int = 0, cache: bool | str = True,
                 images: np.ndarray | None = None, targets=None) -> tf.data.Dataset:
    """Batches for Keras.

    `training` shuffles (reshuffled each epoch). `with_view` adds the rows' view codes (column `view`,
    0 when absent) for the training model; defaults to `training`. `with_metadata=False` is for image-only
    models. `with_target` defaults to whether the
    table has scores. `cache` is True (memory), a file prefix (disk) or False. `images` optionally gives
    already-decoded uint8 images aligned with the rows (then no file is read). `targets` replaces the
    score target: an array or a dict of arrays (one per model output) aligned with the rows.
    """
    with_view = training if with_view is None else with_view
    if targets is not None:
        with_target = True
    with_target = (TARGET_COLUMN in table) if with_target is None else with_target
    inputs = {"metadata": metadata_array(table)} if with_metadata else {}
    if with_view:
        views = table[VIEW_COLUMN] if VIEW_COLUMN in table else np.zeros(len(table))
        inputs["view"] = np.asarray(views, dtype=np.int32)
    if images is not None:
        inputs["image"] = images
    else:
        inputs["image"] = table["path"].astype(str).to_numpy()
    elements = (inputs,)
    if with_target:
        if targets is None:
            targets = table[TARGET_COLUMN].to_numpy(dtype=np.float32).reshape(-1, 1)
        elements += (targets,)
    ds = tf.data.Dataset.from_tensor_slices(elements if with_target else inputs)
    if images is None:
        def load(x, *y):
            x = dict(x)
            x["image"] = decode(x["image"], image_size)
            return (x, *y) if y else x

        ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
        if cache:
            ds = ds.cache(cache if isinstance(cache, str) else "")
    if training:
        ds = ds.shuffle(min(len(table), 10_000), seed=seed, reshuffle_each_iteration=True)

    def to_float(x, *y):
        x = dict(x)
        x["image"] = tf.cast(x["image"], tf.float32)
        return (x, *y) if y else x

    return ds.batch(batch_size).map(to_float, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
