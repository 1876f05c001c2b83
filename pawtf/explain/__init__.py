"""Saliency maps for popularity models, and scores for the maps.

Which parts of a photo drive its predicted Pawpularity? Every method is a class over the shared
:class:`~pawtf.explain.base.Explainer`: it binds a model (the photo's metadata is held fixed) and a
:class:`~pawtf.explain.base.Target` (the score by default) and maps a batch of photos to saliency maps
``[N, H, W]`` normalised to [0, 1]:

>>> from pawtf.explain import make_explainer, METHODS
>>> sorted(METHODS)
['gradcam', 'gradcam++', 'rise', 'smoothgrad', 'vanilla']
>>> explainer = make_explainer("vanilla", model)   # doctest: +SKIP
>>> maps = explainer(images, metadata)             # images float32 [N, H, W, 3] 0-255, metadata [N, 12]

Methods: ``vanilla`` and ``smoothgrad`` (tf-keras-vis ``Saliency``), ``gradcam`` and ``gradcam++``
(tf-keras-vis, on the backbone's feature map), ``rise`` (ours, batched). tf-keras-vis's ScoreCAM is not
offered: its softmax over a single regression output is always 1, so its maps mean nothing here.

Scores for maps (:mod:`pawtf.explain.scores`): insertion and deletion AUC, energy ratio and pointing game
against ground-truth masks. :func:`pawtf.explain.batch.explain_files` is what ``pawtf explain`` runs.
"""

from __future__ import annotations

from pawtf.explain.base import Explainer, Target, load_model, normalize_maps
from pawtf.explain.cam import GradCAM, GradCAMPlusPlus
from pawtf.explain.gradients import SmoothGrad, VanillaGradient
from pawtf.explain.rise import RISE

#: CLI name -> method class.
METHODS: dict[str, type[Explainer]] = {
    cls.name: cls for cls in (VanillaGradient, SmoothGrad, GradCAM, GradCAMPlusPlus, RISE)
}

#: Methods asked for by name that are deliberately not offered, with the reason.
NOT_OFFERED = {
    "scorecam": "tf-keras-vis ScoreCAM weights feature maps by a softmax over the model's outputs; the "
                "softmax of this model's single regression output is always 1, so its maps are "
                "meaningless. Use gradcam, gradcam++ or rise.",
}


def make_explainer(name: str, model, **kwargs) -> Explainer:
    """The explainer called `name` (a key of :data:`METHODS`) bound to `model`; `kwargs` go to its class
    (e.g. ``seed``, ``target``, ``batch_size``, RISE's ``masks``).

    >>> make_explainer("scorecam", None)
    Traceback (most recent call last):
    ...
    ValueError: scorecam is not offered: tf-keras-vis ScoreCAM weights feature maps by a softmax over the model's outputs; the softmax of this model's single regression output is always 1, so its maps are meaningless. Use gradcam, gradcam++ or rise.
    """
    key = name.strip().lower()
    if key in NOT_OFFERED:
        raise ValueError(f"{key} is not offered: {NOT_OFFERED[key]}")
    if key not in METHODS:
        raise ValueError(f"unknown saliency method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[key](model, **kwargs)


__all__ = [
    "METHODS", "NOT_OFFERED", "Explainer", "GradCAM", "GradCAMPlusPlus", "RISE", "SmoothGrad", "Target",
    "VanillaGradient", "load_model", "make_explainer", "normalize_maps",
]
