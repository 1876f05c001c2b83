"""The outputs a task's model can have, one class each: the score, the 12 flags, the buckets, "good".

An output knows everything that follows from what it predicts: its training target and loss, its Keras
metrics, its validation figures beside their trivial baselines, the columns `pawtf predict` writes, how
it ranks photos, its outputs in an exported SavedModel (and back), and what `pawtf explain` can target
in it. A task (`pawtf.tasks.base.Task`) is a set of outputs and how its model wires them.

TensorFlow and Keras are imported where an output builds a loss, a metric or a signature, so that
reading the tasks (the CLI's ``--help``, say) stays instant.

Example:

>>> import numpy as np, pandas as pd
>>> rows = pd.DataFrame({"Pawpularity": [20.0, 40.0, 60.0]})
>>> stats = TaskStats.from_rows(rows)
>>> ScoreOutput().evaluate(np.array([25.0, 40.0, 55.0]), rows, stats)["val_rmse"]
4.08248290463863
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: the tasks are read without importing pandas
    import pandas as pd

from pawtf.data.schema import FLAGS, TARGET_COLUMN
from pawtf.tasks.stats import BUCKET_LABELS, GOOD_COLUMN, TaskStats, bucket_of, expected_bucket

__all__ = ["BUCKETS_OUTPUT", "FLAGS_OUTPUT", "GOOD_OUTPUT", "SCORE_OUTPUT", "SCORE_TARGET", "VERDICTS",
           "BucketsOutput", "ExplainTarget", "FlagsOutput", "GoodOutput", "Output", "ScoreOutput",
           "bucket_metrics", "flag_loss", "flag_metrics", "flag_output_name", "good_metrics", "rmse",
           "score_loss"]

#: Output names: the keys of a multi-output model's predictions and of its SavedModel's outputs.
SCORE_OUTPUT, FLAGS_OUTPUT, BUCKETS_OUTPUT, GOOD_OUTPUT = "pawpularity", "flags", "buckets", "good"
#: The rater's verdicts: probability of "good" below 0.5, and from 0.5 up.
VERDICTS = ("retake", "good")
#: The explanation target naming the score.
SCORE_TARGET = "score"


@dataclasses.dataclass(frozen=True)
class ExplainTarget:
    """One value a saliency map can explain: unit `unit` of model output `output`, called `name`.
    Insertion/deletion curves divide it by `scale` (100 for the score, 1 for a probability)."""

    name: str
    output: str
    unit: int = 0
    scale: float = 1.0


def rmse(y_true, y_pred) -> float:
    """Root mean squared error (scikit-learn's), on whatever scale the values have.

    >>> rmse([0, 0], [3, 4])
    3.5355339059327378
    """
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(np.asarray(y_true, float).ravel(), np.asarray(y_pred, float).ravel()))


def score_loss(loss: str):
    """The Keras loss for 0-100 targets and outputs.

    Args:
        loss: ``"mse"`` on the score, or ``"bce"``: binary cross-entropy on score / 100.

    Raises:
        ValueError: for another `loss`.
    """
    import keras

    if loss == "mse":
        return "mse"
    if loss == "bce":
        bce = keras.losses.BinaryCrossentropy()

        def scaled_bce(y_true, y_pred):
            return bce(y_true / 100.0, y_pred / 100.0)

        return scaled_bce
    raise ValueError(f"unknown loss {loss!r}; expected 'mse' or 'bce'")


def flag_loss(positive_weights, negative_weights):
    """Binary cross-entropy on 12 probabilities, each flag's classes weighted (mean over flags).

    Args:
        positive_weights: 12 weights of rows where a flag is 1.
        negative_weights: 12 weights of rows where it is 0.
    """
    import keras

    pos = keras.ops.convert_to_tensor(np.asarray(positive_weights, np.float32))
    neg = keras.ops.convert_to_tensor(np.asarray(negative_weights, np.float32))

    def weighted_flag_bce(y_true, y_pred):
        y_true = keras.ops.cast(y_true, "float32")
        p = keras.ops.clip(y_pred, 1e-7, 1 - 1e-7)
        terms = pos * y_true * keras.ops.log(p) + neg * (1 - y_true) * keras.ops.log(1 - p)
        return -keras.ops.mean(terms, axis=-1)

    return weighted_flag_bce


def flag_metrics(true_flags, predicted) -> dict[str, Any]:
    """Per-flag ROC-AUC (None where the rows hold one class only) and their mean; the trivial baseline
    (a constant) has AUC 0.5."""
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
    """Accuracy and macro-F1 of bucket `probabilities` for `scores`, beside the training fold's majority
    class; the edges, labels and confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    truth = bucket_of(scores, stats.bucket_edges)
    predicted = np.asarray(probabilities).argmax(-1)
    labels = list(range(len(BUCKET_LABELS)))
    return {
        "bucket_accuracy": float(accuracy_score(truth, predicted)),
        "bucket_macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        **_majority_figures(truth, stats),
        "bucket_edges": list(stats.bucket_edges),
        "bucket_labels": list(BUCKET_LABELS),
        "bucket_confusion": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }


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


def _majority_figures(truth: np.ndarray, stats: TaskStats) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    majority = np.full_like(truth, stats.majority_bucket)
    labels = list(range(len(BUCKET_LABELS)))
    return {"baseline_bucket_accuracy": float(accuracy_score(truth, majority)),
            "baseline_bucket_macro_f1": float(f1_score(truth, majority, labels=labels, average="macro",
                                                       zero_division=0))}


def flag_output_name(flag: str) -> str:
    """The SavedModel output holding one flag's probability (an identifier, for REST and gRPC clients).

    >>> flag_output_name("Subject Focus")
    'flag_subject_focus'
    """
    return "flag_" + flag.lower().replace(" ", "_")


def _squeeze(tensor):
    """float32, and [batch, 1] as [batch]."""
    import tensorflow as tf

    tensor = tf.cast(tensor, tf.float32) if tensor.dtype != tf.float32 else tensor
    return tf.squeeze(tensor, -1) if tensor.shape.rank == 2 and tensor.shape[-1] == 1 else tensor


class Output:
    """Base of the three outputs; see the module docstring. ``name`` is the model output's name."""

    name: ClassVar[str] = ""
    #: The figures `pawtf.train.cross_validate` averages, each with the prefix of its summary keys.
    cv_figures: ClassVar[dict[str, str]] = {}
    #: The figure a cross-validation lists per fold when this output ranks the task's photos.
    main_figure: ClassVar[str] = ""
    #: The SavedModel outputs this output becomes.
    signature_names: ClassVar[tuple[str, ...]] = ()
    #: What `pawtf explain` explains by default when this output ranks the task's photos.
    default_target: ClassVar[str] = ""

    def target(self, rows: pd.DataFrame, stats: TaskStats) -> np.ndarray:
        """The training target of `rows`."""
        raise NotImplementedError

    def loss(self, cfg, stats: TaskStats):
        """The Keras loss (cfg: a `pawtf.config.ModelConfig`)."""
        raise NotImplementedError

    def metrics(self) -> list:
        """Keras metrics logged per epoch."""
        raise NotImplementedError

    def evaluate(self, predicted: np.ndarray, rows: pd.DataFrame, stats: TaskStats) -> dict[str, Any]:
        """Validation figures of `predicted` for `rows`, each beside its trivial baseline."""
        raise NotImplementedError

    def baselines(self, rows: pd.DataFrame, stats: TaskStats) -> dict[str, float]:
        """The trivial baselines' figures on `rows` (what `evaluate` sets the figures beside)."""
        raise NotImplementedError

    def headline(self, metrics: dict) -> str | None:
        """This output's figures in one phrase, None when `metrics` lacks them."""
        raise NotImplementedError

    def columns(self, values: np.ndarray) -> list[dict[str, Any]]:
        """Per row, the columns `pawtf predict` writes for this output (besides ``score``)."""
        return [{} for _ in range(len(values))]

    def rank_values(self, values: np.ndarray) -> np.ndarray:
        """Per row, what ranking sorts by (higher is better)."""
        raise NotImplementedError(f"{self.name} does not rank photos")

    def labels(self, values: np.ndarray) -> list[str]:
        """Per row, the prediction in a few characters (contact sheets, listings)."""
        raise NotImplementedError(f"{self.name} does not rank photos")

    def signature(self, tensor) -> dict:
        """The SavedModel outputs (TensorFlow ops) for this output's tensor."""
        return {self.name: _squeeze(tensor)}

    @property
    def signature_key(self) -> str:
        """The SavedModel output that holds this output's whole tensor (squeezed)."""
        return self.name

    def from_signature(self, outputs: dict) -> np.ndarray:
        """This output's values back from a SavedModel's outputs."""
        return np.asarray(outputs[self.signature_key])

    def explain_targets(self) -> list[ExplainTarget]:
        """What saliency maps can explain in this output."""
        raise NotImplementedError

    def info(self, metrics: dict) -> dict[str, Any]:
        """What an export's ``pawtf.json`` records of this output."""
        return {}


class ScoreOutput(Output):
    """``pawpularity``: the score, 0-100, [batch, 1]."""

    name = SCORE_OUTPUT
    cv_figures = {"val_rmse": "rmse", "baseline_rmse": "baseline_rmse"}
    main_figure = "val_rmse"
    signature_names = (SCORE_OUTPUT,)
    default_target = SCORE_TARGET

    def target(self, rows, stats):
        return rows[TARGET_COLUMN].to_numpy(np.float32).reshape(-1, 1)

    def loss(self, cfg, stats):
        return score_loss(cfg.loss)

    def metrics(self):
        import keras

        return [keras.metrics.RootMeanSquaredError(name="rmse")]

    def evaluate(self, predicted, rows, stats):
        return {"val_rmse": rmse(rows[TARGET_COLUMN], predicted), **self.baselines(rows, stats)}

    def baselines(self, rows, stats):
        scores = rows[TARGET_COLUMN].to_numpy(float)
        return {"baseline_rmse": rmse(scores, np.full(len(scores), stats.score_mean))}

    def headline(self, metrics):
        if metrics.get("val_rmse") is None:
            return None
        return f"val_rmse {metrics['val_rmse']:.3f} (mean predictor {metrics['baseline_rmse']:.3f})"

    def rank_values(self, values):
        return np.asarray(values, np.float32).reshape(-1)

    def labels(self, values):
        return [f"{v:.1f}" for v in self.rank_values(values)]

    def explain_targets(self):
        return [ExplainTarget(SCORE_TARGET, SCORE_OUTPUT, 0, 100.0)]


class FlagsOutput(Output):
    """``flags``: the 12 flags' probabilities, [batch, 12] in `pawtf.data.schema.FLAGS` order."""

    name = FLAGS_OUTPUT
    cv_figures = {"mean_flag_auc": "mean_flag_auc"}
    signature_names = (FLAGS_OUTPUT, *(flag_output_name(f) for f in FLAGS))

    def target(self, rows, stats):
        return rows[list(FLAGS)].to_numpy(np.float32)

    def loss(self, cfg, stats):
        return flag_loss(*stats.flag_weights(cfg.flag_balance))

    def metrics(self):
        import keras

        return [keras.metrics.AUC(name="auc", multi_label=True, num_labels=len(FLAGS))]

    def evaluate(self, predicted, rows, stats):
        return flag_metrics(rows[list(FLAGS)].to_numpy(), predicted)

    def baselines(self, rows, stats):
        return {"baseline_flag_auc": 0.5}

    def headline(self, metrics):
        if metrics.get("mean_flag_auc") is None:
            return None
        return f"mean flag ROC-AUC {metrics['mean_flag_auc']:.3f} (constant 0.5)"

    def columns(self, values):
        return [dict(zip(FLAGS, (float(v) for v in row))) for row in np.asarray(values)]

    def signature(self, tensor):
        tensor = _squeeze(tensor)
        return {FLAGS_OUTPUT: tensor, **{flag_output_name(f): tensor[:, j] for j, f in enumerate(FLAGS)}}

    def explain_targets(self):
        return [ExplainTarget(flag, FLAGS_OUTPUT, j) for j, flag in enumerate(FLAGS)]

    def info(self, metrics):
        return {"output_flags": list(FLAGS)}


class BucketsOutput(Output):
    """``buckets``: Poor / Average / Great probabilities, [batch, 3]; the classes are cut at the
    training fold's score terciles."""

    name = BUCKETS_OUTPUT
    cv_figures = {k: k for k in ("bucket_accuracy", "bucket_macro_f1", "baseline_bucket_accuracy",
                                 "baseline_bucket_macro_f1")}
    main_figure = "bucket_accuracy"
    signature_names = ("bucket", "bucket_probabilities")
    default_target = BUCKET_LABELS[-1]

    def target(self, rows, stats):
        return bucket_of(rows[TARGET_COLUMN].to_numpy(float), stats.bucket_edges).astype(np.int32)

    def loss(self, cfg, stats):
        return "sparse_categorical_crossentropy"

    def metrics(self):
        import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def evaluate(self, predicted, rows, stats):
        return bucket_metrics(rows[TARGET_COLUMN].to_numpy(float), predicted, stats)

    def baselines(self, rows, stats):
        return _majority_figures(bucket_of(rows[TARGET_COLUMN].to_numpy(float), stats.bucket_edges), stats)

    def headline(self, metrics):
        if metrics.get("bucket_accuracy") is None:
            return None
        return (f"bucket accuracy {metrics['bucket_accuracy']:.3f} (majority "
                f"{metrics['baseline_bucket_accuracy']:.3f}), macro-F1 {metrics['bucket_macro_f1']:.3f}"
                f" (majority {metrics['baseline_bucket_macro_f1']:.3f})")

    def columns(self, values):
        rows = []
        for probs in np.asarray(values, float):
            row = {"bucket": BUCKET_LABELS[int(probs.argmax())]}
            row.update({f"p_{label.lower()}": float(p) for label, p in zip(BUCKET_LABELS, probs)})
            rows.append(row)
        return rows

    def rank_values(self, values):
        return expected_bucket(values).astype(np.float32)

    def labels(self, values):
        return [BUCKET_LABELS[int(i)] for i in np.asarray(values).argmax(-1)]

    def signature(self, tensor):
        import tensorflow as tf

        tensor = _squeeze(tensor)
        return {"bucket_probabilities": tensor,
                "bucket": tf.gather(tf.constant(BUCKET_LABELS), tf.argmax(tensor, axis=-1))}

    @property
    def signature_key(self):
        return "bucket_probabilities"

    def explain_targets(self):
        return [ExplainTarget(label, BUCKETS_OUTPUT, k) for k, label in enumerate(BUCKET_LABELS)]

    def info(self, metrics):
        return {"bucket_labels": list(BUCKET_LABELS), "bucket_edges": metrics.get("bucket_edges")}


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

        tensor = _squeeze(tensor)
        return {GOOD_OUTPUT: tensor, "verdict": tf.where(tensor >= 0.5, VERDICTS[1], VERDICTS[0])}

    def explain_targets(self):
        return [ExplainTarget(GOOD_OUTPUT, GOOD_OUTPUT, 0)]

    def info(self, metrics):
        return {"verdicts": list(VERDICTS), "good_edge": metrics.get("good_edge"),
                "good_threshold": metrics.get("good_threshold"), "good_label": GOOD_COLUMN}
