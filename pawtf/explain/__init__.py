"""Saliency maps for popularity models, and scores for the maps.

Which parts of a photo drive its predicted Pawpularity? Every method is a class over the shared
:class:`~pawtf.explain.base.Explainer`: it binds a model (the photo's metadata is held fixed) and a
:class:`~pawtf.explain.base.Target` (the score by default) and maps a batch of photos to saliency maps
``[N, H, W]`` normalised to [0, 1]:

>>> from pawtf.explain import make_explainer, METHODS
>>> sorted(METHODS)
['gradcam', 'gradcam++', 'lime', 'rise', 'shap', 'smoothgrad', 'vanilla']
>>> explainer = make_explainer("vanilla", model)   # doctest: +SKIP
>>> maps = explainer(images, metadata)             # doctest: +SKIP

(``images`` float32 [N, H, W, 3] 0-255, ``metadata`` [N, 12].)

Methods: ``vanilla`` and ``smoothgrad`` (tf-keras-vis ``Saliency``), ``gradcam`` and ``gradcam++``
(tf-keras-vis, on the backbone's feature map), ``rise`` (ours, batched), ``shap`` (SHAP's Partition
explainer over a blurred copy of the photo, `pawtf.explain.shap_partition`) and ``lime`` (LIME's image
explainer on SLIC superpixels, `pawtf.explain.lime_image`); shap and lime are imported only when those
methods are used. ``pawtf explain`` runs the fast ones by default (`pawtf.config.ExplainConfig.methods`:
``gradcam++`` and ``vanilla``); :data:`ALL` (``"all"``) asks for every method. tf-keras-vis's ScoreCAM is
not offered: its softmax over a single regression output is always 1, so its maps mean nothing here; nor
is LRP: no implementation supports Keras 3.

Scores for maps (:mod:`pawtf.explain.scores`): insertion and deletion AUC, energy ratio and pointing game
against ground-truth masks. :func:`pawtf.explain.batch.explain_files` is what ``pawtf explain`` runs.
"""

from __future__ import annotations

import importlib
from typing import Iterable

from pawtf.config import ExplainConfig

#: CLI name -> (module, class) of each method. The classes load TensorFlow, so they are imported when
#: used (`METHODS`, `make_explainer`), not when names are checked (`check_method`, the CLI's --help).
_WHERE = {
    "vanilla": ("pawtf.explain.gradients", "VanillaGradient"),
    "smoothgrad": ("pawtf.explain.gradients", "SmoothGrad"),
    "gradcam": ("pawtf.explain.cam", "GradCAM"),
    "gradcam++": ("pawtf.explain.cam", "GradCAMPlusPlus"),
    "rise": ("pawtf.explain.rise", "RISE"),
    "shap": ("pawtf.explain.shap_partition", "PartitionSHAP"),
    "lime": ("pawtf.explain.lime_image", "LimeImage"),
}
#: The methods' CLI names, in the order they are listed.
METHOD_NAMES = tuple(_WHERE)
#: How RISE can weigh its masks (`pawtf.explain.rise`).
RISE_WEIGHTINGS = ("prediction", "deviation")
_LAZY = {cls: module for module, cls in _WHERE.values()}
_LAZY.update({name: "pawtf.explain.base" for name in ("Explainer", "Target", "normalize_maps",
                                                       "target_for")})


def __getattr__(name: str):
    """The method classes, `METHODS` (CLI name -> class) and the base's names, imported on first use."""
    if name == "METHODS":
        return {key: getattr(importlib.import_module(module), cls) for key, (module, cls) in _WHERE.items()}
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pawtf.explain' has no attribute {name!r}")


#: Where `pawtf explain` writes unless told (`pawtf.explain.batch.explain_files`).
DEFAULT_OUT = "explain"
#: What ``--methods`` takes for every method.
ALL = "all"

#: Methods asked for by name that are deliberately not offered, with the reason.
NOT_OFFERED = {
    "scorecam": "tf-keras-vis ScoreCAM weights feature maps by a softmax over the model's outputs; the "
                "softmax of this model's single regression output is always 1, so its maps are "
                "meaningless. Use gradcam, gradcam++ or rise.",
    "lrp": "no LRP implementation supports Keras 3 (iNNvestigate, the reference one, pins TensorFlow < 2.15 "
           "and tf.keras 2; pawtf models are Keras 3). Use gradcam++ or vanilla for gradient maps, or "
           "shap, lime or rise for model-agnostic ones.",
}


class ExplainError(ValueError):
    """A request that cannot be run (unknown method, missing metadata, no images); the CLI prints it."""


def check_method(name: str) -> str:
    """The method called `name` (case and spaces do not matter): the one place method names are checked.

    Raises:
        ExplainError: for a method not offered (with the reason) or unknown (with the known ones).
    """
    key = name.strip().lower()
    if key in NOT_OFFERED:
        raise ExplainError(f"{key} is not offered: {NOT_OFFERED[key]}")
    if key not in _WHERE:
        raise ExplainError(f"unknown method {name.strip()!r}; choose from {', '.join(METHOD_NAMES)}")
    return key


def parse_methods(methods: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"vanilla,rise"`` or a list -> checked method names, each once; ``all`` stands for every method.

    Args:
        methods: names, comma-separated or a list; None or empty: the default set
            (`pawtf.config.ExplainConfig.methods`, the fast methods).

    Returns:
        The method names, each once, in the order given.

    Raises:
        ExplainError: for a method not offered or unknown.

    >>> parse_methods("GradCAM, rise")
    ('gradcam', 'rise')
    >>> parse_methods("all")
    ('vanilla', 'smoothgrad', 'gradcam', 'gradcam++', 'rise', 'shap', 'lime')
    """
    if methods is None:
        methods = ExplainConfig.methods
    if isinstance(methods, str):
        methods = methods.split(",")
    names: list[str] = []
    for m in methods:
        if m.strip().lower() == ALL:
            names += list(METHOD_NAMES)
        elif m.strip():
            names.append(check_method(m))
    return tuple(dict.fromkeys(names)) or parse_methods(None)


def make_explainer(name: str, model, **kwargs):
    """The explainer called `name` (one of `METHOD_NAMES`) bound to `model`; `kwargs` go to its class
    (e.g. ``seed``, ``target``, ``batch_size``, RISE's ``masks``).

    >>> make_explainer("scorecam", None)
    Traceback (most recent call last):
    ...
    pawtf.explain.ExplainError: scorecam is not offered: tf-keras-vis ScoreCAM weights feature maps by a softmax over the model's outputs; the softmax of this model's single regression output is always 1, so its maps are meaningless. Use gradcam, gradcam++ or rise.
    """
    module, cls = _WHERE[check_method(name)]
    return getattr(importlib.import_module(module), cls)(model, **kwargs)


__all__ = [
    "ALL", "DEFAULT_OUT", "METHODS", "METHOD_NAMES", "NOT_OFFERED", "RISE_WEIGHTINGS", "ExplainError", "Explainer", "GradCAM",
    "GradCAMPlusPlus", "LimeImage", "PartitionSHAP", "RISE", "SmoothGrad", "Target", "VanillaGradient", "check_method", "make_explainer",
    "normalize_maps", "parse_methods", "target_for",
]
