"""``good``: the rater's probability that a photo is good (:class:`GoodOutput`), its verdict, and its
figures beside the majority class."""

from __future__ import annotations

from typing import Any

import numpy as np

from pawtf.tasks.outputs.base import GOOD_OUTPUT, ExplainTarget, Output, squeeze
from pawtf.tasks.outputs.flags import flag_loss
from pawtf.tasks.stats import GOOD_COLUMN, TaskStats

__all__ = ["VERDICTS", "GoodOutput", "good_metrics"]

#: The rater's verdicts: probability of "good" below 0.5, and from 0.5 up.
VERDICTS = ("retake", "good")


def good_metrics(truth, probabilities, stats: TaskStats) -> dict[str, Any]:
    """Accuracy, balanced accuracy and ROC-AUC of "good" `probabilities` (verdict "good" from 0.5) for the
    0/1 labels `truth`, beside the training fold's majority class (whose balanced accuracy is 0.5 and AUC
    0.5); the share of good photos and the confusion matrix (rows: truth retake, good).

    >>> stats = TaskStats(40, 100, (0.5,) * 12, (30, 50), 0, good_edge=50, good_rate=0.25)
    >>> m = good_metrics([0, 0, 0, 1], [0.1, 0.2, 0.7, 0.9], stats)
    >>> m["good_accuracy"], round(m["good_balanced_accuracy"], 3), m["good_auc"], m["baseline_good_accuracy"]
    (0.75, 0.833, 1.0, 0.75)
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, roc_auc_score

    truth = np.asarray(truth, int).ravel()
    predicted = (np.asarray(probabilities, float).ravel() >= 0.5).astype(int)
    both = 0 < truth.sum() < len(truth)
    return {
        "good_accuracy": float(accuracy_score(truth, predicted)),
        "good_balanced_accuracy": float(balanced_accuracy_score(truth, predicted)) if both else None,
        "good_auc": float(roc_auc_score(truth, np.asarray(probabilities, float).ravel())) if both else None,
        **_good_majority(truth, stats),
        "good_rate_val": float(truth.mean()) if len(truth) else None,
        "good_edge": stats.good_edge,
        "good_confusion": confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
    }


def _good_majority(truth: np.ndarray, stats: TaskStats) -> dict[str, float]:
    majority = int(stats.good_rate > 0.5)
    return {"baseline_good_accuracy": float(np.mean(np.asarray(truth) == majority)) if len(truth) else 0.0,
            "baseline_good_balanced_accuracy": 0.5, "baseline_good_auc": 0.5}


class GoodOutput(Output):
    """``good``: the rater's probability that a photo is good (not a retake), [batch, 1]. The label is a
    table's ``Good`` column where present, else the score above the training fold's edge
    (`TaskStats.good_edge`); the loss weighs the classes to balance; the verdict is "good" from 0.5, the
    threshold the rater chose on its training rows being folded into the model (`pawtf.tasks.rater`)."""

    name = GOOD_OUTPUT
    cv_figures = {k: k for k in ("good_accuracy", "good_balanced_accuracy", "good_auc", "baseline_good_accuracy")}
    main_figure = "good_balanced_accuracy"
    signature_names = (GOOD_OUTPUT, "verdict")
    default_target = GOOD_OUTPUT

    def target(self, rows, stats):
        return stats.good_labels(rows).astype(np.float32).reshape(-1, 1)

    def loss(self, cfg, stats):
        good, retake = stats.good_weights()
        return flag_loss([good], [retake])

    def metrics(self):
        import keras

        return [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")]

    def evaluate(self, predicted, rows, stats):
        return good_metrics(stats.good_labels(rows), predicted, stats)

    def baselines(self, rows, stats):
        return _good_majority(stats.good_labels(rows), stats)

    def headline(self, metrics):
        if metrics.get("good_accuracy") is None:
            return None
        balanced, auc = metrics.get("good_balanced_accuracy"), metrics.get("good_auc")
        return (f"good/retake accuracy {metrics['good_accuracy']:.3f} (majority class "
                f"{metrics['baseline_good_accuracy']:.3f}), balanced accuracy "
                f"{'n/a' if balanced is None else f'{balanced:.3f}'} (majority 0.5), ROC-AUC "
                f"{'n/a' if auc is None else f'{auc:.3f}'}")

    def columns(self, values):
        p = self.rank_values(values)
        return [{"p_good": float(v), "verdict": VERDICTS[int(v >= 0.5)]} for v in p]

    def rank_values(self, values):
        return np.asarray(values, np.float32).reshape(len(values), -1)[:, 0]

    def labels(self, values):
        return [f"{VERDICTS[int(v >= 0.5)]} {v:.2f}" for v in self.rank_values(values)]

    def signature(self, tensor):
        import tensorflow as tf

        tensor = squeeze(tensor)
        return {GOOD_OUTPUT: tensor, "verdict": tf.where(tensor >= 0.5, VERDICTS[1], VERDICTS[0])}

    def explain_targets(self):
        return [ExplainTarget(GOOD_OUTPUT, GOOD_OUTPUT, 0)]

    def info(self, metrics):
        return {"verdicts": list(VERDICTS), "good_edge": metrics.get("good_edge"),
                "good_threshold": metrics.get("good_threshold"), "good_label": GOOD_COLUMN}
