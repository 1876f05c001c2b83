"""The popularity model: a flat backbone for the image, a Dense branch for the 12 flags, a small head.

Inputs are ``image`` (float32 RGB pixels in 0-255 at the configured size; backbone preprocessing is a layer
inside the model) and, unless image-only, ``metadata`` (12 floats). The output ``pawpularity`` is the
score on the 0-100 scale. The last layer starts at the training mean, so the first epochs improve on the
mean predictor instead of climbing towards it.

Example:

>>> from pawtf.config import ModelConfig
>>> from pawtf.models.popularity import build_model
>>> model = build_model(ModelConfig(backbone="mobilenetv2", weights=None, image_size=64))
>>> [t.name for t in model.inputs], model.output.shape
(['image', 'metadata'], (None, 1))
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import keras
import numpy as np

from pawtf import tasks
from pawtf.config import ModelConfig
from pawtf.data.augment import ViewAugment
from pawtf.data.schema import FLAGS
from pawtf.models import backbones

OUTPUT = tasks.SCORE_OUTPUT  # "pawpularity"
EMBEDDING = "image_pool"  # the pooled backbone features: what frozen-backbone trials cache
IMAGE_EMBEDDING = "image_embedding"  # the Dense layer the score (or buckets) head starts from
FLAGS_EMBEDDING = "flags_embedding"  # attribute-fed's flags head: stage 1's image embedding
FLAGS_LOGITS = "flags_logits"


def image_size(cfg: ModelConfig) -> int:
    """The input size the model uses: the configured one, else the backbone's default."""
    return cfg.image_size or backbones.get(cfg.backbone).default_size


def build_model(cfg: ModelConfig, initial_score: float = 38.0,
                flag_prior: Sequence[float] | None = None) -> keras.Model:
    """Build the functional model of `cfg.task` described by `cfg` (see `pawtf.tasks`).

    `initial_score` (0-100) is what the untrained model predicts: pass the training fold's mean.
    `flag_prior` (12 prevalences) starts a flags head at the training fold's flag rates.
    """
    spec = backbones.get(cfg.backbone)
    size = image_size(cfg)
    if size < spec.min_size:
        raise ValueError(f"{cfg.backbone} needs images of at least {spec.min_size} px, got {size}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")

    image = keras.Input((size, size, 3), name="image")
    x = backbones.Preprocess(spec.preprocess, name="preprocess")(image)
    backbone = spec.build(x, cfg.weights)
    set_trainable(backbone, cfg.unfreeze)
    features = keras.layers.Identity(name=backbones.FEATURES_LAYER)(spec.features(backbone))
    embedding = keras.layers.GlobalAveragePooling2D(name=EMBEDDING)(features)
    inputs, outputs = _heads(embedding, cfg, initial_score, flag_prior)
    return keras.Model([image, *inputs], outputs, name=f"pawpularity_{cfg.backbone}")


def build_head_model(cfg: ModelConfig, embedding_dim: int, initial_score: float = 38.0,
                     flag_prior: Sequence[float] | None = None) -> keras.Model:
    """The model minus its backbone: input ``embedding`` (the pooled backbone features, see
    `embedding_model`) and, where the task takes it, ``metadata``. Its layers are named as in
    `build_model`, so a head trained on cached embeddings moves into the full model with
    `transfer_weights`."""
    embedding = keras.Input((embedding_dim,), name="embedding")
    inputs, outputs = _heads(embedding, cfg, initial_score, flag_prior)
    return keras.Model([embedding, *inputs], outputs, name="pawpularity_head")


def _heads(embedding, cfg: ModelConfig, initial_score: float, flag_prior):
    """Image embedding -> the task's heads. Returns (extra inputs, outputs).

    The score (or buckets) head fuses the image embedding with a metadata branch fed by the true flags
    (input ``metadata``) or, for ``attribute-fed``, by the flags head's predictions. Layer names are the
    same whatever the task, so weights move between a task's stages by name.
    """
    task = tasks.check_task(cfg.task)
    if task == tasks.ATTRIBUTE_FED and not cfg.use_metadata:
        raise ValueError("attribute-fed feeds predicted flags to the metadata branch: it needs "
                         "use_metadata=True")
    x = keras.layers.Dense(cfg.embedding_units, activation="relu", name=IMAGE_EMBEDDING)(embedding)
    inputs, outputs, flags = [], {}, None
    if tasks.predicts_flags(task):
        # multitask: the flags head shares the image embedding with the score head. attribute-fed: the
        # flags head has its own (stage 1's), so the score head's embedding is trained in stage 2 only.
        f = x if task == tasks.MULTITASK else keras.layers.Dense(
            cfg.embedding_units, activation="relu", name=FLAGS_EMBEDDING)(embedding)
        flags = _flags_output(keras.layers.Dropout(cfg.dropout, name="flags_dropout")(f), flag_prior)
        outputs[tasks.FLAGS_OUTPUT] = flags
    if tasks.takes_metadata(task, cfg.use_metadata):
        flags = keras.Input((len(FLAGS),), name="metadata")
        inputs.append(flags)
    if task == tasks.MULTITASK:
        flags = None  # the score head sees the image only
    h = x
    if flags is not None:
        m = flags
        for i, units in enumerate(cfg.metadata_units):
            m = keras.layers.Dense(units, activation="relu", name=f"metadata_dense{i}")(m)
        h = keras.layers.Concatenate(name="fusion")([h, m])
    h = keras.layers.Dropout(cfg.dropout, name="fusion_dropout")(h)
    h = keras.layers.Dense(cfg.head_units, activation="relu", name="head_dense")(h)
    h = keras.layers.Dropout(cfg.dropout, name="head_dropout")(h)
    if task == tasks.BUCKETS:
        logits = keras.layers.Dense(len(tasks.BUCKET_LABELS), name="bucket_logits")(h)
        outputs[tasks.BUCKETS_OUTPUT] = keras.layers.Softmax(name=tasks.BUCKETS_OUTPUT)(logits)
    else:
        outputs[OUTPUT] = _score_output(h, cfg.loss, initial_score)
    return inputs, outputs[OUTPUT] if task == tasks.SCORE else outputs


def _flags_output(x, prior):
    """Dense(12) -> sigmoid named ``flags``, started at the prevalences `prior` (0.5 when unknown)."""
    p = np.clip(np.asarray(prior if prior is not None else [0.5] * len(FLAGS), float), 1e-3, 1 - 1e-3)
    logits = keras.layers.Dense(len(FLAGS), bias_initializer=keras.initializers.Constant(np.log(p / (1 - p))),
                                name=FLAGS_LOGITS)(x)
    return keras.layers.Activation("sigmoid", name=tasks.FLAGS_OUTPUT)(logits)


def embedding_model(model: keras.Model) -> keras.Model:
    """The image half of a popularity model: raw pixels -> pooled backbone features."""
    return keras.Model(model.get_layer("image").output, model.get_layer(EMBEDDING).output,
                       name="embedding")


def transfer_weights(source: keras.Model, target: keras.Model, only: Iterable[str] | None = None,
                     rename: dict[str, str] | None = None) -> list[str]:
    """Copy the weights of every layer that `target` shares by name with `source` (restricted to the
    source names in `only` when given; `rename` maps a source layer's name to its target's); returns
    the source names copied."""
    rename = rename or {}
    names = {l.name for l in target.layers}
    copied = []
    for layer in source.layers:
        name = rename.get(layer.name, layer.name)
        if layer.weights and name in names and (only is None or layer.name in only):
            target.get_layer(name).set_weights(layer.get_weights())
            copied.append(layer.name)
    return copied


def _score_output(x, loss: str, initial_score: float):
    """Dense(1) on the score/100 scale, started at `initial_score`; ReLU (mse) or sigmoid (bce)."""
    p = min(max(initial_score / 100.0, 1e-3), 1 - 1e-3)
    if loss == "mse":
        logit = keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(p),
                                   kernel_initializer="zeros", name="score_dense")(x)
        scaled = keras.layers.Rescaling(100.0, name="score_scale")(logit)
        return keras.layers.ReLU(name=OUTPUT)(scaled)
    if loss == "bce":
        bias = math.log(p / (1 - p))
        logit = keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(bias),
                                   kernel_initializer="zeros", name="score_dense")(x)
        prob = keras.layers.Activation("sigmoid", name="score_sigmoid")(logit)
        return keras.layers.Rescaling(100.0, name=OUTPUT)(prob)
    raise ValueError(f"unknown loss {loss!r}; expected 'mse' or 'bce'")


def set_trainable(backbone: keras.Model, unfreeze: int) -> None:
    """Train only the last `unfreeze` layers of the backbone; BatchNormalization always stays frozen
    (inference mode), as usual when fine-tuning on small data. ``unfreeze < 0`` trains all layers."""
    layers = [l for l in backbone.layers if not isinstance(l, keras.layers.InputLayer)]
    start = 0 if unfreeze < 0 else max(0, len(layers) - unfreeze)
    for i, layer in enumerate(layers):
        frozen = i < start or isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = not frozen


def training_model(model: keras.Model) -> keras.Model:
    """Wrap `model` for fitting: an extra ``view`` input drives `ViewAugment` on the image before the
    model. The weights are shared; save and serve `model`, never this wrapper."""
    inputs = {t.name: keras.Input(t.shape[1:], name=t.name) for t in model.inputs}
    view = keras.Input((), dtype="int32", name="view")
    image = ViewAugment(name="view_augment")([inputs["image"], view])
    output = model({**inputs, "image": image})
    return keras.Model({**inputs, "view": view}, output, name="training")
