"""Saliency maps for popularity models, and scores for the maps.

Which parts of a photo drive its predicted Pawpularity? Every method is a class over the shared
:class:`~pawtf.explain.base.Explainer`: it binds a model (the photo's metadata is held fixed) and a
:class:`~pawtf.explain.base.Target` (the score by default) and maps a batch of photos to saliency maps
``[N, H, W]`` normalised to [0, 1]:

>>> from pawtf.explain import make_explainer, METHODS
>>> sorted(METHODS)
['gradcam', 'gradcam++', 'rise', 'smoothgrad', 'vanilla']
>>> explainer = make_explainer("vanilla", model)   # doctest: +SKIP
>>> maps = explainer(images, metadata)             # doctest: +SKIP

(``images`` float32 [N, H, W, 3] 0-255, ``metadata`` [N, 12].)

Methods: ``vanilla`` and ``smoothgrad`` (tf-keras-vis ``Saliency``), ``gradcam`` and ``gradcam++``
(tf-keras-vis, on the backbone's feature map), ``rise`` (ours, batched). ``pawtf explain`` runs the fast
ones by default (`pawtf.config.ExplainConfig.methods`: ``gradcam++`` and ``vanilla``); :data:`ALL`
(``"all"``) asks for every method. tf-keras-vis's ScoreCAM is not
offered: its softmax over a single regression output is always 1, so its maps mean nothing here.

Scores for maps (:mod:`pawtf.explain.scores`): insertion and deletion AUC, energy ratio and pointing game
against ground-truth masks. :func:`pawtf.explain.batch.explain_files` is what ``pawtf explain`` runs.
"""

from __future__ import annotations

from typing import Iterable

from pawtf.config import ExplainConfig
from pawtf.explain.base import Explainer, Target, normalize_maps, target_for
from pawtf.explain.cam import GradCAM, GradCAMPlusPlus
from pawtf.explain.gradients import SmoothGrad, VanillaGradient
from pawtf.explain.rise import RISE

#: CLI name -> method class.
METHODS: dict[str, type[Explainer]] = {
    cls.name: cls for cls in (VanillaGradient, SmoothGrad, GradCAM, GradCAMPlusPlus, RISE)
}

#: What ``--methods`` takes for every method of :data:`METHODS`.
ALL = "all"

#: Methods asked for by name that are deliberately not offered, with the reason.
NOT_OFFERED = {
    "scorecam": "tf-keras-vis ScoreCAM weights feature maps by a softmax over the model's outputs; the "
                "softmax of this model's single regression output is always 1, so its maps are "
                "meaningless. Use gradcam, gradcam++ or rise.",
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
    if key not in METHODS:
        raise ExplainError(f"unknown method {name.strip()!r}; choose from {', '.join(METHODS)}")
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
    ('vanilla', 'smoothgrad', 'gradcam', 'gradcam++', 'rise')
    """
    if methods is None:
        methods = ExplainConfig.methods
    if isinstance(methods, str):
        methods = methods.split(",")
    names: list[str] = []
    for m in methods:
        if m.strip().lower() == ALL:
            names += list(METHODS)
        elif m.strip():
            names.append(check_method(m))
    return tuple(dict.fromkeys(names)) or parse_methods(None)


def make_explainer(name: str, model, **kwargs) -> Explainer:
    """The explainer called `name` (a key of :data:`METHODS`) bound to `model`; `kwargs` go to its class
    (e.g. ``seed``, ``target``, ``batch_size``, RISE's ``masks``).

    >>> make_explainer("scorecam", None)
    Traceback (most recent call last):
    ...
    pawtf.explain.ExplainError: scorecam is not offered: tf-keras-vis ScoreCAM weights feature maps by a softmax over the model's outputs; the softmax of this model's single regression output is always 1, so its maps are meaningless. Use gradcam, gradcam++ or rise.
    """
    return METHODS[check_method(name)](model, **kwargs)


__all__ = [
    "ALL", "METHODS", "NOT_OFFERED", "ExplainError", "Explainer", "GradCAM", "GradCAMPlusPlus", "RISE",
    "SmoothGrad", "Target", "VanillaGradient", "check_method", "make_explainer", "normalize_maps",
    "parse_methods", "target_for",
]
