"""``flags``: the 12 flags' probabilities (:class:`FlagsOutput`), their class-weighted loss and their
ROC-AUCs."""

from __future__ import annotations

from typing import Any

import numpy as np

from pawtf.data.schema import FLAGS
from pawtf.tasks.outputs.base import FLAGS_OUTPUT, ExplainTarget, Output, squeeze

__all__ = ["FlagsOutput", "flag_loss", "flag_metrics", "flag_output_name"]


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


def flag_output_name(flag: str) -> str:
    """The SavedModel output holding one flag's probability (an identifier, for REST and gRPC clients).

    >>> flag_output_name("Subject Focus")
    'flag_subject_focus'
    """
    return "flag_" + flag.lower().replace(" ", "_")


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
        tensor = squeeze(tensor)
        return {FLAGS_OUTPUT: tensor, **{flag_output_name(f): tensor[:, j] for j, f in enumerate(FLAGS)}}

    def explain_targets(self):
        return [ExplainTarget(flag, FLAGS_OUTPUT, j) for j, flag in enumerate(FLAGS)]

    def info(self, metrics):
        return {"output_flags": list(FLAGS)}
