"""Building blocks of the tasks' heads: each a few named Keras layers on a symbolic tensor.

A task (`pawtf.tasks`) wires these into its heads; layer names are the same whatever the task, so
weights move between a task's stages, and from a head trained on cached embeddings into a full model,
by name (`pawtf.models.popularity.transfer_weights`).

Example:

>>> import keras
>>> from pawtf.config import ModelConfig
>>> cfg = ModelConfig(embedding_units=8, head_units=4)
>>> pooled = keras.Input((32,), name="embedding")
>>> h = fused_head(image_embedding(pooled, cfg), metadata_input(), cfg)
>>> score_output(h, "mse", 38.0, name="pawpularity").shape
(None, 1)
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np

from pawtf.config import ModelConfig
from pawtf.data.schema import FLAGS

__all__ = ["FLAGS_EMBEDDING", "FLAGS_LOGITS", "IMAGE_EMBEDDING", "METADATA_INPUT", "buckets_output",
           "flags_embedding", "flags_output", "fused_head", "image_embedding", "metadata_input",
           "score_output"]

METADATA_INPUT = "metadata"
IMAGE_EMBEDDING = "image_embedding"  # the Dense layer the score (or buckets) head starts from
FLAGS_EMBEDDING = "flags_embedding"  # attribute-fed's flags head: stage 1's image embedding
FLAGS_LOGITS = "flags_logits"


#: The outputs' last layers compute in float32 whatever the precision policy (mixed_float16 or
#: mixed_bfloat16 on an accelerator): losses, sigmoids and softmaxes stay exact.
OUTPUT_DTYPE = "float32"

def metadata_input() -> keras.KerasTensor:
    """The ``metadata`` input: the 12 flags, float32."""
    return keras.Input((len(FLAGS),), name=METADATA_INPUT)


def image_embedding(pooled, cfg: ModelConfig):
    """Dense(`cfg.embedding_units`, relu) on the pooled backbone features: ``image_embedding``."""
    return keras.layers.Dense(cfg.embedding_units, activation="relu", name=IMAGE_EMBEDDING)(pooled)


def flags_embedding(pooled, cfg: ModelConfig):
    """A second image embedding, for a flags head that does not share the score head's."""
    return keras.layers.Dense(cfg.embedding_units, activation="relu", name=FLAGS_EMBEDDING)(pooled)


def flags_output(x, cfg: ModelConfig, prior: Sequence[float] | None, name: str):
    """Dropout -> Dense(12) -> sigmoid called `name`, started at the prevalences `prior` (0.5 when
    None), so the first epochs start from the training fold's flag rates."""
    x = keras.layers.Dropout(cfg.dropout, name="flags_dropout")(x)
    p = np.clip(np.asarray(prior if prior is not None else [0.5] * len(FLAGS), float), 1e-3, 1 - 1e-3)
    logits = keras.layers.Dense(len(FLAGS), bias_initializer=keras.initializers.Constant(np.log(p / (1 - p))),
                                name=FLAGS_LOGITS, dtype=OUTPUT_DTYPE)(x)
    return keras.layers.Activation("sigmoid", name=name, dtype=OUTPUT_DTYPE)(logits)


def fused_head(x, flags, cfg: ModelConfig):
    """The shared head: the image embedding `x`, fused with a Dense branch on `flags` (true or
    predicted; None: the image alone), then dropout, Dense(`cfg.head_units`), dropout."""
    if flags is not None:
        m = flags
        for i, units in enumerate(cfg.metadata_units):
            m = keras.layers.Dense(units, activation="relu", name=f"metadata_dense{i}")(m)
        x = keras.layers.Concatenate(name="fusion")([x, m])
    x = keras.layers.Dropout(cfg.dropout, name="fusion_dropout")(x)
    x = keras.layers.Dense(cfg.head_units, activation="relu", name="head_dense")(x)
    return keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)


def score_output(h, loss: str, initial_score: float, name: str):
    """Dense(1) on the score / 100 scale, started at `initial_score` (0-100), called `name`.

    Args:
        h: the head's last tensor.
        loss: ``"mse"`` (a ReLU output) or ``"bce"`` (a sigmoid output).
        initial_score: what the untrained head predicts: the training fold's mean.
        name: the output's name.

    Raises:
        ValueError: for another `loss`.
    """
    p = min(max(initial_score / 100.0, 1e-3), 1 - 1e-3)
    if loss == "mse":
        logit = keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(p),
                                   kernel_initializer="zeros", name="score_dense", dtype=OUTPUT_DTYPE)(h)
        scaled = keras.layers.Rescaling(100.0, name="score_scale", dtype=OUTPUT_DTYPE)(logit)
        return keras.layers.ReLU(name=name, dtype=OUTPUT_DTYPE)(scaled)
    if loss == "bce":
        bias = math.log(p / (1 - p))
        logit = keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(bias),
                                   kernel_initializer="zeros", name="score_dense", dtype=OUTPUT_DTYPE)(h)
        prob = keras.layers.Activation("sigmoid", name="score_sigmoid", dtype=OUTPUT_DTYPE)(logit)
        return keras.layers.Rescaling(100.0, name=name, dtype=OUTPUT_DTYPE)(prob)
    raise ValueError(f"unknown loss {loss!r}; expected 'mse' or 'bce'")


def buckets_output(h, classes: int, name: str):
    """Dense(`classes`) -> softmax called `name`."""
    logits = keras.layers.Dense(classes, name="bucket_logits", dtype=OUTPUT_DTYPE)(h)
    return keras.layers.Softmax(name=name, dtype=OUTPUT_DTYPE)(logits)
