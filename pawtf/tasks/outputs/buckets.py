"""``buckets``: the probabilities of the score's buckets (:class:`BucketsOutput`), their accuracy and
macro-F1 beside the majority bucket."""

from __future__ import annotations

from typing import Any

import numpy as np

from pawtf.data.schema import TARGET_COLUMN
from pawtf.tasks.outputs.base import BUCKETS_OUTPUT, ExplainTarget, Output, squeeze
from pawtf.tasks.stats import BUCKET_LABELS, TaskStats, bucket_of, expected_bucket

__all__ = ["BucketsOutput", "bucket_metrics"]


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


def _majority_figures(truth: np.ndarray, stats: TaskStats) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    majority = np.full_like(truth, stats.majority_bucket)
    labels = list(range(len(BUCKET_LABELS)))
    return {"baseline_bucket_accuracy": float(accuracy_score(truth, majority)),
            "baseline_bucket_macro_f1": float(f1_score(truth, majority, labels=labels, average="macro",
                                                       zero_division=0))}


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

        tensor = squeeze(tensor)
        return {"bucket_probabilities": tensor,
                "bucket": tf.gather(tf.constant(BUCKET_LABELS), tf.argmax(tensor, axis=-1))}

    @property
    def signature_key(self):
        return "bucket_probabilities"

    def explain_targets(self):
        return [ExplainTarget(label, BUCKETS_OUTPUT, k) for k, label in enumerate(BUCKET_LABELS)]

    def info(self, metrics):
        return {"bucket_labels": list(BUCKET_LABELS), "bucket_edges": metrics.get("bucket_edges")}
