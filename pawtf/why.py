"""Why a rater said "good" or "retake": feature-level SHAP values of the rater on bank features.

A rater trained with ``--head fc`` (`pawtf.feature_heads`) reads named inputs: the technical measures
(`pawtf.quality.technical`: sharpness, brightness, clipped shadows and highlights, contrast, noise, JPEG
blockiness, colourfulness), the composition measures (`pawtf.quality.composition`: the pet's share of the
frame, its offset from the centre, its contrast with the background) and the backbones' features, block by
block. :func:`reasons` asks how much each
of them moved one photo's probability of "good" away from a typical photo's: Shapley values (SHAP's
Kernel explainer) over groups of inputs, each technical or composition measure its own group and each backbone block's
pooled features one group ("Lite0 block 3 of 7"), a group being "absent" when it takes the training
photos' mean (the values the model's own standardisation holds). The values add up to the photo's
probability minus a typical photo's. The PCA mixes every input into every component, so reasons are
given on the inputs it reads, which have names, not on its components.

:func:`why_text` puts the strongest in words, as ``pawtf predict --why`` writes them and ``pawtf explain``
records them::

    retake: blurry (sharpness 1.2, typical 3.4) -0.21; too dark (brightness 0.18, typical 0.45) -0.12;
    Lite2 overall content -0.05

Example:

>>> run = load_run("runs/rater")                                                     # doctest: +SKIP
>>> explainer = WhyExplainer(run.model, run.config.model.features)                   # doctest: +SKIP
>>> why_text(explainer.reasons(images)[0], p_good=0.31)               # doctest: +SKIP
'retake: blurry (sharpness 1.2, typical 3.4) -0.21; ...'
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["PHRASES", "Reason", "WhyExplainer", "add_reasons", "why_text"]

#: Per technical measure, what a low and a high value is called (None: a value on that side says nothing).
PHRASES = {
    "sharpness": ("blurry", "sharp"),
    "brightness": ("too dark", "bright"),
    "shadows_clipped": (None, "lost shadows"),
    "highlights_clipped": (None, "blown highlights"),
    "contrast": ("flat, low contrast", "contrasty"),
    "noise": ("clean", "grainy"),
    "blockiness": (None, "JPEG blocks"),
    "colourfulness": ("dull colours", "vivid colours"),
    "megapixels": ("small photo", "large photo"),
    "subject_share": ("pet small in the frame", "pet fills the frame"),
    "subject_offset": ("pet centred", "pet off-centre"),
    "subject_contrast": ("pet blends into the background", "pet stands out from the background"),
}
#: pawtf.quality.technical.COMPOSITION_MEASURES (tested equal; that module imports TensorFlow).
_COMPOSITION = ("subject_share", "subject_offset", "subject_contrast")
#: The layers after the model's ``features`` concatenation, in order, in a ``--head fc`` rater.
_HEAD_LAYERS = ("standardize", "pca", "ga_selection", "fc_dropout_in", "fc", "fc_dropout", "good_logit", "good")


@dataclasses.dataclass(frozen=True)
class Reason:
    """One group of inputs: its name, its SHAP value (in probability of good), and for a technical or
    composition measure the photo's value and the training photos' mean; ``no_pet`` for a composition
    measure of a photo where the locator found no cat or dog (its values are then placeholders, 0)."""

    name: str
    value: float
    measure: str | None = None
    photo: float | None = None
    typical: float | None = None
    no_pet: bool = False

    @property
    def words(self) -> str:
        """The reason in plain words, e.g. ``too dark (brightness 0.18, typical 0.45)``.

        >>> Reason("subject_share", -0.1, "subject_share", 0.3, 0.6).words
        'pet small in the frame (subject share 0.3, typical 0.6)'
        >>> Reason("subject_offset", -0.1, "subject_offset", 0.0, 0.3, no_pet=True).words
        'no cat or dog found (subject offset 0, typical 0.3)'
        """
        if self.measure is None:
            return self.name
        if self.no_pet:  # not "centred" or "blends in": there is no pet to place
            return f"no cat or dog found ({self.measure.replace('_', ' ')} {self.photo:.3g}, typical {self.typical:.3g})"
        low, high = PHRASES.get(self.measure, (None, None))
        phrase = (low if self.photo < self.typical else high) or self.measure.replace("_", " ")
        return f"{phrase} ({self.measure.replace('_', ' ')} {self.photo:.3g}, typical {self.typical:.3g})"


class WhyExplainer:
    """Feature-level SHAP for one ``--head fc`` rater model (a run's Keras model) whose run read `features`
    (``BACKBONE:LEVEL,...``, as its config records them).

    Raises:
        ValueError: for a model that is not a rater on bank features (it has no named inputs to weigh).
    """

    def __init__(self, model, features: str, samples: int = 512, seed: int = 0):
        import keras

        names = {layer.name for layer in model.layers}
        if "good" not in names or "standardize" not in names:
            raise ValueError("reasons in words need a rater trained on named features (--task rater --head fc); "
                             "this model reads the photo end to end: `pawtf explain` shows where it looked")
        self.samples, self.seed = samples, seed
        joined = model.get_layer("features").output if "features" in names else model.get_layer("standardize").input
        self.features = keras.Model(model.inputs, joined)
        width = int(self.features.output.shape[-1])
        x = inp = keras.Input((width,))
        for name in _HEAD_LAYERS:
            if name in names:
                x = model.get_layer(name)(x)
        self.head = keras.Model(inp, x)
        self.mean = np.asarray(model.get_layer("standardize").mean, np.float64).reshape(-1)
        self.groups = _groups(model, features, width)
        self.share_column = next((int(cols[0]) for _, cols, m in self.groups if m == "subject_share"), None)

    def reasons(self, images: np.ndarray) -> list[list[Reason]]:
        """Per photo (float32 [N, size, size, 3], 0-255, the model's size), every group's reason, strongest
        first."""
        import shap

        feats = np.asarray(self.features.predict_on_batch(np.asarray(images, np.float32)), np.float64)
        out = []
        for row in feats:
            def value(masks, row=row):
                x = np.repeat(self.mean[None], len(masks), 0)
                for j, (_, cols, _) in enumerate(self.groups):
                    on = masks[:, j] > 0.5
                    x[np.ix_(on, cols)] = row[cols]
                return np.asarray(self.head.predict_on_batch(x.astype(np.float32)), np.float64).reshape(-1)

            np.random.seed(self.seed)  # SHAP's Kernel explainer samples coalitions with NumPy's generator
            explainer = shap.KernelExplainer(value, np.zeros((1, len(self.groups))))
            phi = np.asarray(explainer.shap_values(np.ones((1, len(self.groups))), nsamples=self.samples,
                                                   silent=True)).reshape(-1)
            no_pet = self.share_column is not None and row[self.share_column] == 0  # the locator's "not found"
            found = [Reason(name, float(v), measure, None if measure is None else float(row[cols[0]]),
                            None if measure is None else float(self.mean[cols[0]]),
                            no_pet=no_pet and measure in _COMPOSITION)
                     for (name, cols, measure), v in zip(self.groups, phi)]
            out.append(sorted(found, key=lambda r: -abs(r.value)))
        return out


def why_text(reasons: list[Reason], p_good: float, top: int = 3) -> str:
    """The verdict and its `top` strongest reasons for it, e.g. ``retake: blurry (...) -0.21; ...``.

    >>> why_text([Reason("Lite0 block 2 of 7", 0.02), Reason("brightness", -0.2, "brightness", 0.2, 0.45)], 0.3)
    'retake: too dark (brightness 0.2, typical 0.45) -0.20'
    """
    good = p_good >= 0.5
    pushing = [r for r in reasons if (r.value > 0) == good and abs(r.value) >= 0.005][:top]
    said = "; ".join(f"{r.words} {r.value:+.2f}" for r in pushing) or "no input stands out"
    return f"{'good' if good else 'retake'}: {said}"


def _groups(model, features: str, width: int) -> list[tuple[str, np.ndarray, str | None]]:
    """The named groups of the model's feature columns, in the order the ``features`` layer joins the run's
    `features` (``BACKBONE:LEVEL,...``): multilevel one group per block and then its pooled part, technical
    and composition one group per measure, pooled and logits one group each."""
    from pawtf.quality.technical import COMPOSITION_MEASURES, TECHNICAL_MEASURES

    names = {layer.name for layer in model.layers}
    sizes = ([int(t.shape[-1]) for t in model.get_layer("features")._inbound_nodes[0].input_tensors]
             if "features" in names else [width])
    groups, start = [], 0
    first = features.split(",")[0].strip().partition(":")[0]
    for text, n in zip(features.split(","), sizes):
        backbone, _, level = text.strip().partition(":")
        short = backbone.replace("efficientnet_", "").replace("lite", "Lite")
        if level in ("technical", "composition"):
            measures = TECHNICAL_MEASURES if level == "technical" else COMPOSITION_MEASURES
            groups += [(m, np.array([start + k]), m) for k, m in enumerate(measures)]
        elif level == "multilevel":
            blocks = _block_sizes(model, backbone, flat=backbone == first) or [n]
            offset = start
            for i, size in enumerate(blocks):
                last = i == len(blocks) - 1
                groups.append((f"{short} overall content" if last else f"{short} block {i + 1} of {len(blocks) - 1}",
                               np.arange(offset, offset + size), None))
                offset += size
        else:
            groups.append((f"{short} {'ImageNet classes' if level == 'logits' else 'overall content'}",
                           np.arange(start, start + n), None))
        start += n
    if start != width or any(len(cols) == 0 for _, cols, _ in groups):
        raise ValueError(f"the model's features ({width} columns) do not match its run's features {features!r}")
    return groups


def _block_sizes(model, backbone: str, flat: bool) -> list[int] | None:
    """The sizes of the parts of `backbone`'s ``multilevel`` concatenation (each block's pooled output, then
    the pooled last map): in the model itself for the first extractor (`flat`), else in its nested
    extractor (``features<i>_<backbone>``, `pawtf.feature_heads.serving_model`)."""
    holders = [model] if flat else [x for x in model.layers if hasattr(x, "layers") and x.name.endswith(backbone)]
    for holder in holders:
        try:
            layer = holder.get_layer("multilevel")
        except ValueError:
            continue
        return [int(x.shape[-1]) for x in layer._inbound_nodes[0].input_tensors]
    return None


def add_reasons(scorer, scores, top: int = 3, samples: int = 512) -> None:
    """Add ``why`` (see :func:`why_text`) to the ``extra`` of each scored photo in `scores` (from
    `pawtf.predict.predict` with `scorer`, a run's scorer).

    Raises:
        ValueError: a SavedModel (the reasons need the run's Keras model) or a model without named inputs.
    """
    from pawtf.data.images import load_rgb

    if scorer.run is None:
        raise ValueError("--why needs the run folder (a SavedModel has no named inputs to weigh)")
    explainer = WhyExplainer(scorer.run.model, scorer.run.config.model.features, samples=samples)
    size = scorer.image_size
    for s in scores:
        if s.ok:
            image = load_rgb(s.path, size=(size, size)).astype(np.float32)[None]
            s.extra["why"] = why_text(explainer.reasons(image)[0], s.extra["p_good"], top=top)
