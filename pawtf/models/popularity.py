"""The popularity model: a flat backbone for the image, the task's heads on its pooled features.

Inputs are ``image`` (float32 RGB pixels in 0-255 at the configured size; backbone preprocessing is a layer
inside the model) and, where the task takes them, ``metadata`` (12 floats). The heads come from the task
(`pawtf.tasks`), built from the blocks in `pawtf.models.heads`: a ``score`` model's output
``pawpularity`` is the score on the 0-100 scale, its last layer started at the training mean, so the
first epochs improve on the mean predictor instead of climbing towards it.

What the heads read from the photo (``ModelConfig.image_levels``, :data:`IMAGE_LEVELS`): by default
``pooled``, the global average of the backbone's last feature map. ``multilevel`` reads every block's
average before it (the MultiGAP features of aesthetic-quality work: blur, noise and exposure live in the
early blocks, which the last one has pooled away), ``technical`` adds the photo's technical measures
(`pawtf.quality.technical`) as the model sees it, and ``composition`` where the pet is in the frame
(`pawtf.quality.composition`: a frozen pet locator inside the model, two Lite0 passes more). Those levels
are joined and then standardised by a ``Normalization`` layer whose mean and variance come from the
training photos (:func:`adapt_levels`, called before the fit), as a feature head's scaler would.

Example:

>>> from pawtf.config import ModelConfig
>>> from pawtf.models.popularity import build_model
>>> model = build_model(ModelConfig(backbone="mobilenetv2", weights=None, image_size=64))
>>> [t.name for t in model.inputs], model.output.shape
(['image', 'metadata'], (None, 1))
"""

from __future__ import annotations

from typing import Iterable, Sequence

import keras

from pawtf import tasks
from pawtf.config import ModelConfig
from pawtf.data.augment import ViewAugment
from pawtf.models import backbones
from pawtf.models.layers import Preprocess

__all__ = ["EMBEDDING", "IMAGE_INPUT", "IMAGE_LEVELS", "adapt_levels", "build_head_model", "build_model",
           "embedding_model", "image_levels", "image_size", "level_tensors", "set_trainable", "training_model",
           "transfer_weights"]

IMAGE_INPUT = "image"
EMBEDDING = "image_pool"  # what the heads read from the photo: what frozen-backbone trials cache
#: What the heads can read from the photo: ``pooled`` or ``multilevel`` (which holds ``pooled``), and
#: optionally ``technical`` and ``composition``; the levels of `pawtf.features` that the model computes from
#: the image it is given.
IMAGE_LEVELS = ("pooled", "multilevel", "technical", "composition")
_JOINED = "image_levels"  # the joined levels, before their standardisation (named EMBEDDING)


def image_size(cfg: ModelConfig) -> int:
    """The input size the model uses: the configured one, else the backbone's default."""
    return cfg.image_size or backbones.get(cfg.backbone).default_size


def image_levels(cfg: ModelConfig) -> tuple[str, ...]:
    """`cfg.image_levels` as a tuple, checked.

    >>> image_levels(ModelConfig(image_levels="multilevel, technical"))
    ('multilevel', 'technical')

    Raises:
        ValueError: an unknown level, or not exactly one of pooled and multilevel.
    """
    levels = tuple(dict.fromkeys(l.strip() for l in cfg.image_levels.split(",") if l.strip()))
    unknown = [l for l in levels if l not in IMAGE_LEVELS]
    if unknown or len({"pooled", "multilevel"} & set(levels)) != 1:
        raise ValueError(f"--image-levels {cfg.image_levels!r}: give pooled or multilevel (which holds pooled), "
                         f"then optionally technical and composition, e.g. multilevel,technical")
    if "multilevel" in levels and backbones.get(cfg.backbone).block_outputs is None:
        raise ValueError(f"--image-levels multilevel needs the backbone's blocks, which the registry knows for "
                         f"{', '.join(backbones.with_blocks())}; {cfg.backbone} is not one of them")
    return levels


def level_tensors(backbone: keras.Model, spec: backbones.BackboneSpec, image, pooled,
                  levels: Iterable[str]) -> dict:
    """The Keras tensors of `levels` (of :data:`IMAGE_LEVELS`) for a `backbone` built on the model's
    `image` input (0-255) with `pooled` its pooled last feature map; `pawtf.features` computes with the
    same tensors."""
    from pawtf.quality.composition import composition_tensor
    from pawtf.quality.technical import TechnicalMeasures

    out = {}
    if "pooled" in levels:
        out["pooled"] = pooled
    if "multilevel" in levels:
        pools = [keras.layers.GlobalAveragePooling2D(name=f"multilevel_{i}")(backbone.get_layer(layer).output)
                 for i, layer in enumerate(spec.block_outputs(backbone))]
        out["multilevel"] = keras.layers.Concatenate(name="multilevel")([*pools, pooled])
    if "technical" in levels:
        out["technical"] = TechnicalMeasures(name="technical")(image)
    if "composition" in levels:
        out["composition"] = composition_tensor(image, name="composition")
    return out


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

    image = keras.Input((size, size, 3), name=IMAGE_INPUT)
    x = Preprocess(spec.preprocess, name="preprocess")(image)
    backbone = spec.build(x, cfg.weights)
    set_trainable(backbone, cfg.unfreeze)
    features = keras.layers.Identity(name=backbones.FEATURES_LAYER)(spec.features(backbone))
    levels = image_levels(cfg)
    if levels == ("pooled",):
        embedding = keras.layers.GlobalAveragePooling2D(name=EMBEDDING)(features)
    else:
        pooled = keras.layers.GlobalAveragePooling2D(name="image_pool_last")(features)
        parts = list(level_tensors(backbone, spec, image, pooled, levels).values())
        joined = keras.layers.Concatenate(name=_JOINED)(parts) if len(parts) > 1 else parts[0]
        embedding = keras.layers.Normalization(name=EMBEDDING, dtype="float32")(joined)  # float32 statistics
    inputs, outputs = tasks.get(cfg.task).build_heads(embedding, cfg, initial_score, flag_prior)
    return keras.Model([image, *inputs], outputs, name=f"pawpularity_{cfg.backbone}")


def build_head_model(cfg: ModelConfig, embedding_dim: int, initial_score: float = 38.0,
                     flag_prior: Sequence[float] | None = None) -> keras.Model:
    """The model minus its backbone: input ``embedding`` (the pooled backbone features, see
    `embedding_model`) and, where the task takes it, ``metadata``. Its layers are named as in
    `build_model`, so a head trained on cached embeddings moves into the full model with
    `transfer_weights`."""
    embedding = keras.Input((embedding_dim,), name="embedding")
    inputs, outputs = tasks.get(cfg.task).build_heads(embedding, cfg, initial_score, flag_prior)
    return keras.Model([embedding, *inputs], outputs, name="pawpularity_head")


def adapt_levels(model: keras.Model, images) -> bool:
    """Set the standardisation of a model's joined image levels (see the module docstring) to the mean
    and variance of the features of `images` (a dataset of 0-255 image batches: the training photos, no
    augmentation); returns whether the model has one (a ``pooled`` model has none: False, nothing done).
    Deterministic, so a resumed fit adapts to the same values. A column constant over the photos (no
    variance: a channel that never fires) is centred but not scaled, as scikit-learn's StandardScaler does,
    so a photo where it fires is not multiplied by 1e7."""
    import numpy as np

    layer = model.get_layer(EMBEDDING)
    if not isinstance(layer, keras.layers.Normalization):
        return False
    joined = keras.Model(model.get_layer(IMAGE_INPUT).output, layer.input, name="image_levels")
    layer.adapt(np.asarray(joined.predict(images, verbose=0), np.float64))  # a mixed policy predicts in 16 bits
    variance = np.asarray(layer.adapt_variance)
    layer.adapt_variance.assign(np.where(variance > 1e-6, variance, 1.0).astype(variance.dtype))
    layer.finalize_state()
    return True


def embedding_model(model: keras.Model) -> keras.Model:
    """The image half of a popularity model: raw pixels -> pooled backbone features."""
    return keras.Model(model.get_layer(IMAGE_INPUT).output, model.get_layer(EMBEDDING).output,
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
            if isinstance(layer, keras.layers.Normalization):  # its statistics are constants made from them
                target.get_layer(name).finalize_state()
            copied.append(layer.name)
    return copied


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
    image = ViewAugment(name="view_augment", dtype="float32")([inputs["image"], view])
    output = model({**inputs, "image": image})
    return keras.Model({**inputs, "view": view}, output, name="training")
