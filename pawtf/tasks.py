"""What a model predicts: the four tasks, their targets, losses, metrics and trivial baselines.

``score``
    Pawpularity (0-100) from the image and, unless image-only, the 12 flags. One output, ``pawpularity``.
``multitask``
    Image only: Pawpularity and the 12 flags (``flags``, 12 sigmoid probabilities in
    :data:`pawtf.data.schema.FLAGS` order) from one backbone. Weighted losses; most flags are rare, so
    each flag's loss is class-balanced with weights from the training fold (``flag_balance``).
``attribute-fed``
    Image only, two stages: a multitask model predicts the flags, then a score head takes those
    *predicted* flags as its metadata input. Training rows get out-of-fold predicted flags, so the score
    head learns from flags as noisy as those it gets at inference. Outputs ``pawpularity`` and ``flags``.
``buckets``
    Poor / Average / Great by the training fold's score terciles; softmax output ``buckets``.

Everything here is plain numbers and Keras losses; models are built by `pawtf.models.popularity`.

Example:

>>> import numpy as np, pandas as pd
>>> rows = pd.DataFrame({"Pawpularity": [10, 20, 30, 40, 50, 60]})
>>> stats = TaskStats.from_rows(rows)
>>> stats.bucket_edges
(26.67, 43.33)
>>> bucket_of([10, 26.67, 30, 60], stats.bucket_edges).tolist()
[0, 0, 1, 2]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import pandas as pd

from pawtf.data.schema import FLAGS, TARGET_COLUMN

SCORE, MULTITASK, ATTRIBUTE_FED, BUCKETS = "score", "multitask", "attribute-fed", "buckets"
TASKS = (SCORE, MULTITASK, ATTRIBUTE_FED, BUCKETS)

#: Output names (the keys of a multi-output model's predictions and of the SavedModel's outputs).
SCORE_OUTPUT, FLAGS_OUTPUT, BUCKETS_OUTPUT = "pawpularity", "flags", "buckets"
BUCKET_LABELS = ("Poor", "Average", "Great")
#: Explanation targets besides the flag names and bucket labels.
SCORE_TARGET = "score"
#: A flag's class weight never exceeds this (a flag seen once would otherwise dominate the loss).
MAX_FLAG_WEIGHT = 50.0


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    return task


def check_config(cfg) -> None:
    """Refuse settings a task cannot train with, before any work (cfg: a `RunConfig`)."""
    task = check_task(cfg.model.task)
    if cfg.model.flag_balance not in ("balanced", "none"):
        raise ValueError(f"unknown flag_balance {cfg.model.flag_balance!r}; expected 'balanced' or 'none'")
    if task == ATTRIBUTE_FED and not cfg.model.use_metadata:
        raise ValueError("attribute-fed feeds the predicted flags to the score head's metadata branch: it "
                         "needs use_metadata=True (the model takes the image only anyway; drop "
                         "--no-metadata)")
    if task == ATTRIBUTE_FED and cfg.train.oof_folds < 2:
        raise ValueError(f"attribute-fed needs oof_folds >= 2 for out-of-fold flags, got "
                         f"{cfg.train.oof_folds}")


def predicts_score(task: str) -> bool:
    return check_task(task) != BUCKETS


def predicts_flags(task: str) -> bool:
    return check_task(task) in (MULTITASK, ATTRIBUTE_FED)


def takes_metadata(task: str, use_metadata: bool) -> bool:
    """Whether a model of `task` has a ``metadata`` input (multitask and attribute-fed are image only)."""
    return check_task(task) in (SCORE, BUCKETS) and use_metadata


def output_names(task: str) -> list[str]:
    names = {SCORE: [SCORE_OUTPUT], MULTITASK: [FLAGS_OUTPUT, SCORE_OUTPUT],
             ATTRIBUTE_FED: [FLAGS_OUTPUT, SCORE_OUTPUT], BUCKETS: [BUCKETS_OUTPUT]}
    return names[check_task(task)]


def as_dict(predictions, task: str) -> dict[str, np.ndarray]:
    """A model's predictions as ``{output name: array}`` (a single-output model gives an array)."""
    if isinstance(predictions, dict):
        return {k: np.asarray(v) for k, v in predictions.items()}
    return {output_names(task)[0]: np.asarray(predictions)}


def bucket_edges(scores) -> tuple[float, float]:
    """The score terciles (rounded to 0.01) that cut Poor | Average | Great."""
    q1, q2 = np.quantile(np.asarray(scores, float), [1 / 3, 2 / 3])
    return round(float(q1), 2), round(float(q2), 2)


def bucket_of(scores, edges) -> np.ndarray:
    """Class per score: 0 Poor (<= first edge), 1 Average (<= second), 2 Great."""
    return np.searchsorted(np.asarray(edges, float), np.asarray(scores, float), side="left")


@dataclasses.dataclass
class TaskStats:
    """What the heads and their losses learn from the training fold (never from validation rows)."""

    score_mean: float
    score_var: float
    flag_prevalence: tuple[float, ...]
    bucket_edges: tuple[float, float]
    majority_bucket: int

    @classmethod
    def from_rows(cls, rows: pd.DataFrame) -> "TaskStats":
        scores = rows[TARGET_COLUMN].to_numpy(float)
        if all(f in rows for f in FLAGS):
            prevalence = tuple(float(v) for v in rows[list(FLAGS)].to_numpy(float).mean(0))
        else:
            prevalence = (0.5,) * len(FLAGS)
        edges = bucket_edges(scores)
        majority = int(np.bincount(bucket_of(scores, edges), minlength=len(BUCKET_LABELS)).argmax())
        return cls(float(scores.mean()), float(scores.var()) or 1.0, prevalence, edges, majority)

    def flag_weights(self, balance: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-flag weights of positive and negative rows: "balanced" gives each class of each flag half
        the weight (as scikit-learn's ``class_weight="balanced"``), capped at `MAX_FLAG_WEIGHT`."""
        n = len(FLAGS)
        if balance == "none":
            return np.ones(n, np.float32), np.ones(n, np.float32)
        if balance != "balanced":
            raise ValueError(f"unknown flag_balance {balance!r}; expected 'balanced' or 'none'")
        p = np.clip(np.asarray(self.flag_prevalence, float), 0.5 / MAX_FLAG_WEIGHT, 1 - 0.5 / MAX_FLAG_WEIGHT)
        return (0.5 / p).astype(np.float32), (0.5 / (1 - p)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"score_mean": self.score_mean, "score_var": self.score_var,
                "flag_prevalence": dict(zip(FLAGS, self.flag_prevalence)),
                "bucket_edges": list(self.bucket_edges), "majority_bucket": self.majority_bucket}


# ---------------------------------------------------------------------------------------------------------
# Training: targets, losses, metrics, the monitored value


def targets(task: str, rows: pd.DataFrame, stats: TaskStats):
    """The training targets of `rows` for `task`: an array for one output, else a dict by output."""
    scores = rows[TARGET_COLUMN].to_numpy(np.float32).reshape(-1, 1)
    if check_task(task) == SCORE:
        return scores
    if task == BUCKETS:
        return {BUCKETS_OUTPUT: bucket_of(scores[:, 0], stats.bucket_edges).astype(np.int32)}
    return {SCORE_OUTPUT: scores, FLAGS_OUTPUT: rows[list(FLAGS)].to_numpy(np.float32)}


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


def flag_loss(positive_weights, negative_weights):
    """Binary cross-entropy on 12 probabilities, each flag's classes weighted (mean over flags)."""
    pos = keras.ops.convert_to_tensor(np.asarray(positive_weights, np.float32))
    neg = keras.ops.convert_to_tensor(np.asarray(negative_weights, np.float32))

    def weighted_flag_bce(y_true, y_pred):
        y_true = keras.ops.cast(y_true, "float32")
        p = keras.ops.clip(y_pred, 1e-7, 1 - 1e-7)
        terms = pos * y_true * keras.ops.log(p) + neg * (1 - y_true) * keras.ops.log(1 - p)
        return -keras.ops.mean(terms, axis=-1)

    return weighted_flag_bce


def compile_args(cfg, stats: TaskStats) -> dict:
    """``loss``, ``loss_weights`` and ``metrics`` for ``model.compile`` (cfg: a `ModelConfig`)."""
    task = check_task(cfg.task)
    if task == SCORE:
        return {"loss": score_loss(cfg.loss), "metrics": [keras.metrics.RootMeanSquaredError(name="rmse")]}
    if task == BUCKETS:
        return {"loss": {BUCKETS_OUTPUT: "sparse_categorical_crossentropy"},
                "metrics": {BUCKETS_OUTPUT: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}}
    # An mse score loss is in squared points (~400 for the mean predictor): divide by the variance so
    # that both losses start near 1 and the weights mean what they say.
    score_weight = cfg.score_loss_weight / (stats.score_var if cfg.loss == "mse" else 1.0)
    return {
        "loss": {SCORE_OUTPUT: score_loss(cfg.loss),
                 FLAGS_OUTPUT: flag_loss(*stats.flag_weights(cfg.flag_balance))},
        "loss_weights": {SCORE_OUTPUT: score_weight, FLAGS_OUTPUT: cfg.flags_loss_weight},
        "metrics": {SCORE_OUTPUT: [keras.metrics.RootMeanSquaredError(name="rmse")],
                    FLAGS_OUTPUT: [keras.metrics.AUC(name="auc", multi_label=True, num_labels=len(FLAGS))]},
    }


def monitor(task: str) -> str:
    """The validation value (lower is better) that picks the best epoch."""
    return "val_rmse" if check_task(task) == SCORE else "val_loss"


# ---------------------------------------------------------------------------------------------------------
# Evaluation: per-task figures, each with its trivial baseline


def rmse(y_true, y_pred) -> float:
    y_true = np.asarray(y_true, float).ravel()
    y_pred = np.asarray(y_pred, float).ravel()
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def flag_metrics(true_flags, predicted) -> dict[str, Any]:
    """Per-flag ROC-AUC (None where validation holds one class only) and their mean; the trivial
    baseline (a constant) has AUC 0.5."""
    from sklearn.metrics import roc_auc_score

    true_flags, predicted = np.asarray(true_flags), np.asarray(predicted, float)
    per_flag = {}
    for j, flag in enumerate(FLAGS):
        y = true_flags[:, j]
        per_flag[flag] = (float(roc_auc_score(y, predicted[:, j])) if 0 < y.sum() < len(y) else None)
    defined = [v for v in per_flag.values() if v is not None]
    return {"flag_auc": per_flag, "mean_flag_auc": float(np.mean(defined)) if defined else None,
            "baseline_flag_auc": 0.5}


def bucket_metrics(scores, probabilities, stats: TaskStats) -> dict[str, Any]:
    """Accuracy and macro-F1 against the majority class of the training fold."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    truth = bucket_of(scores, stats.bucket_edges)
    predicted = np.asarray(probabilities).argmax(-1)
    majority = np.full_like(truth, stats.majority_bucket)
    labels = list(range(len(BUCKET_LABELS)))
    return {
        "bucket_accuracy": float(accuracy_score(truth, predicted)),
        "bucket_macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        "baseline_bucket_accuracy": float(accuracy_score(truth, majority)),
        "baseline_bucket_macro_f1": float(f1_score(truth, majority, labels=labels, average="macro",
                                                   zero_division=0)),
        "bucket_edges": list(stats.bucket_edges),
        "bucket_labels": list(BUCKET_LABELS),
        "bucket_confusion": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }


def evaluate(task: str, predictions: dict[str, np.ndarray], rows: pd.DataFrame,
             stats: TaskStats) -> dict[str, Any]:
    """The validation figures of `task` for `predictions` (by output name) of `rows`."""
    out: dict[str, Any] = {}
    scores = rows[TARGET_COLUMN].to_numpy(float)
    if SCORE_OUTPUT in predictions:
        out["val_rmse"] = rmse(scores, predictions[SCORE_OUTPUT])
        out["baseline_rmse"] = rmse(scores, np.full(len(scores), stats.score_mean))
    if FLAGS_OUTPUT in predictions:
        out.update(flag_metrics(rows[list(FLAGS)].to_numpy(), predictions[FLAGS_OUTPUT]))
    if BUCKETS_OUTPUT in predictions:
        out.update(bucket_metrics(scores, predictions[BUCKETS_OUTPUT], stats))
    return out


def expected_bucket(probabilities) -> np.ndarray:
    """A bucket model's ranking value: the expected class index (0 Poor .. 2 Great)."""
    p = np.asarray(probabilities, float)
    return p @ np.arange(p.shape[-1], dtype=float)
