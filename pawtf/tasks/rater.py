"""``rater``: is this photo good, or should it be retaken? A probability from the photo alone.

The aesthetic-rating study this ports rated photos 0 or 1 ("evaluates content and technical parameters").
Here the label of a training photo is the table's ``Good`` column (0/1) where it has one, else whether its
Pawpularity is above the training fold's edge (``--good-above S``; default the top tercile's edge, so a
third of the training photos are good). The classes are weighed to balance in the loss (the study's data
was 6 bad photos to 1 good), and every figure stands beside the majority class's: accuracy, balanced
accuracy and ROC-AUC.

One bare output, ``good`` (sigmoid), from the photo alone (the flags are people's notes on the photo,
not what a photographer can see in it); the best epoch has the lowest validation loss; a search maximises
the validation ROC-AUC. After the fit the decision threshold is chosen on the training rows, where it
gives the best balanced accuracy, and folded into the model's last bias: the model's verdict is then
"good" from 0.5 on, in Keras, in an export and in every command alike, and the run records the threshold
(``good_threshold``: the training-row probability it stands for). The model's probability is thus
centred on the decision; its ranking of photos (and its AUC) is unchanged.

>>> from pawtf import tasks
>>> task = tasks.get("rater")
>>> task.output_names, task.predicts_score, task.default_target, task.image_only
(('good',), False, 'good', True)
>>> best_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
0.8
"""

from __future__ import annotations

import logging

import numpy as np

from pawtf.tasks.base import Objective, Task, register
from pawtf.tasks.outputs import GOOD_OUTPUT, GoodOutput

__all__ = ["GOOD_LOGIT", "Rater", "best_threshold", "fold_threshold"]

logger = logging.getLogger(__name__)

#: The Dense layer giving the rater's logit: the decision threshold is folded into its bias.
GOOD_LOGIT = "good_logit"


def best_threshold(labels, probabilities) -> float:
    """The probability from which calling a photo "good" gives the best balanced accuracy on `labels`
    (Youden's J on the ROC curve; the highest such threshold where several tie)."""
    from sklearn.metrics import roc_curve

    labels, p = np.asarray(labels, int).ravel(), np.asarray(probabilities, float).ravel()
    if not 0 < labels.sum() < len(labels):
        return 0.5  # one class only: nothing to choose from
    fpr, tpr, thresholds = roc_curve(labels, p)
    j = tpr - fpr
    j[~np.isfinite(thresholds)] = -np.inf
    return float(np.clip(thresholds[int(np.argmax(j))], 1e-6, 1 - 1e-6))


def fold_threshold(model, threshold: float, bias_before: float) -> None:
    """Set `model`'s :data:`GOOD_LOGIT` bias to `bias_before` minus the logit of `threshold`, so that its
    output is 0.5 exactly where the unshifted model's was `threshold` (idempotent: a resumed run sets the
    same value again)."""
    layer = model.get_layer(GOOD_LOGIT)
    kernel, _ = layer.get_weights()
    shift = float(np.log(threshold / (1 - threshold)))
    layer.set_weights([kernel, np.array([bias_before - shift], np.float32)])


@register
class Rater(Task):
    name = "rater"
    summary = "good photo or retake? (label: the table's Good column, else the score above --good-above)"
    outputs = (GoodOutput(),)
    image_only = True
    bare_output = True
    monitor = "val_loss"
    objective = Objective("val_auc", "max", ("val_auc",), "good_auc", "baseline_good_auc", "majority class")
    needs_scores = False

    def resolve(self, cfg):
        """No score-based oversampling: its blurred copies would teach the rater that blur is fine (the
        classes are weighed in the loss instead)."""
        if not cfg.data.oversample:
            return cfg
        import dataclasses

        from pawtf.config import RunConfig

        logger.info("rater: trained without the score-based oversampling (its blurred copies would teach that "
                    "blur is fine); the classes are weighed in the loss instead")
        out = RunConfig.from_dict(cfg.to_dict())
        out.data = dataclasses.replace(out.data, oversample=[])
        return out

    def check_config(self, cfg) -> None:
        super().check_config(cfg)
        edge = cfg.model.good_above
        if edge is not None and not 0 <= edge < 100:
            raise ValueError(f"--good-above {edge:g}: needs a score from 0 up to (not including) 100")

    def build_heads(self, pooled, cfg, initial_score, flag_prior):
        import keras

        from pawtf.models.heads import OUTPUT_DTYPE

        inputs, h = self.photo_and_flags_head(pooled, cfg)
        logit = keras.layers.Dense(1, name=GOOD_LOGIT, dtype=OUTPUT_DTYPE)(h)
        return inputs, keras.layers.Activation("sigmoid", name=GOOD_OUTPUT, dtype=OUTPUT_DTYPE)(logit)

    def fit(self, cfg, run, data, fit, **kwargs) -> dict:
        """The one fit, then the threshold chosen on the training rows and folded into the model; the
        validation figures are those of the model as saved (verdict from 0.5)."""
        from pawtf.tasks.stats import TaskStats
        from pawtf.train import evaluate_model, predict_rows

        metrics = fit(cfg, run, data, **kwargs)
        fitted = run.fitted()
        stats = TaskStats.from_rows(data.train, cfg.model.good_above)
        model = run.load_model()
        if "good_threshold" not in fitted:  # (a head on bank features chose it from them already)
            probabilities = predict_rows(model, cfg, data.train)[GOOD_OUTPUT]
            threshold = best_threshold(stats.good_labels(data.train), probabilities)
            bias = float(model.get_layer(GOOD_LOGIT).get_weights()[1][0])
            fitted = {**fitted, "good_threshold": threshold, "good_bias_before": bias}
            run.write_fitted(fitted)  # first: a kill after it folds the same threshold again
            logger.info("rater: verdict 'good' from probability %.3f on the training rows (their best balanced "
                        "accuracy); folded into the model", threshold)
        fold_threshold(model, fitted["good_threshold"], fitted["good_bias_before"])
        run.save_model(model)
        metrics.update(evaluate_model(run.load_model(), cfg, data, stats))
        metrics["good_threshold"] = fitted["good_threshold"]
        return metrics
