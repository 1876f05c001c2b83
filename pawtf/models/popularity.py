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

import keras

from pawtf.config import ModelConfig
from pawtf.data.augment import ViewAugment
from pawtf.data.schema import FLAGS
from pawtf.models import backbones

OUTPUT = "pawpularity"
EMBEDDING = "image_pool"  # the pooled backbone features: what frozen-backbone trials cache


def image_size(cfg: ModelConfig) -> int:
    """The input size the model uses: the configured one, else the backbone's default."""
    return cfg.image_size or backbones.get(cfg.backbone).default_size


def build_model(cfg: ModelConfig, initial_score: float = 38.0) -> keras.Model:
    """Build the functional popularity model described by `cfg`.

    `initial_score` (0-100) is what the untrained model predicts: pass the training fold's mean.
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
    inputs, output = _head(embedding, cfg, initial_score)
    return keras.Model([image, *inputs], output, name=f"pawpularity_{cfg.backbone}")


def build_head_model(cfg: ModelConfig, embedding_dim: int, initial_score: float = 38.0) -> keras.Model:
    """The model minus its backbone: input ``embedding`` (the pooled backbone features, see
    `embedding_model`) and ``metadata``. Its layers are named as in `build_model`, so a head trained on
    cached embeddings moves into the full model with `transfer_weights`."""
    embedding = keras.Input((embedding_dim,), name="embedding")
    inputs, output = _head(embedding, cfg, initial_score)
    return keras.Model([embedding, *inputs], output, name="pawpularity_head")


def _head(embedding, cfg: ModelConfig, initial_score: float):
    """Image embedding (+ metadata branch) -> fusion -> Dense/Dropout -> score. Returns (extra inputs,
    output)."""
    x = keras.layers.Dense(cfg.embedding_units, activation="relu", name="image_embedding")(embedding)
    inputs = []
    if cfg.use_metadata:
        metadata = keras.Input((len(FLAGS),), name="metadata")
        inputs.append(metadata)
        m = metadata
        for i, units in enumerate(cfg.metadata_units):
            m = keras.layers.Dense(units, activation="relu", name=f"metadata_dense{i}")(m)
        x = keras.layers.Concatenate(name="fusion")([x, m])
    x = keras.layers.Dropout(cfg.dropout, name="fusion_dropout")(x)
    x = keras.layers.Dense(cfg.head_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    return inputs, _score_output(x, cfg.loss, initial_score)


def embedding_model(model: keras.Model) -> keras.Model:
    """The image half of a popularity model: raw pixels -> pooled backbone features."""
    return keras.Model(model.get_layer("image").output, model.get_layer(EMBEDDING).output,
                       name="embedding")


def transfer_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy the weights of every layer that `target` shares by name with `source`; returns the names."""
    names = {l.name for l in target.layers}
    copied = []
    for layer in source.layers:
        if layer.weights and layer.name in names:
            target.get_layer(layer.name).set_weights(layer.get_weights())
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


def score_loss(loss: str):
    """The Keras loss for `loss` on 0-100 targets and outputs."""
    if loss == "mse":
        return "mse"
    if loss == "bce":
        bce = keras.losses.BinaryCrossentropy()

        def scaled_bce(y_true, y_pred):
            return bce(y_true / 100.0, y_pred / 100.0)

        return scaled_bce
    raise ValueError(f"unknown loss {loss!r}; expected 'mse' or 'bce'")
