"""``pawpularity``: the score, 0-100 (:class:`ScoreOutput`), its loss and its figure (RMSE)."""

from __future__ import annotations

import numpy as np

from pawtf.data.schema import TARGET_COLUMN
from pawtf.tasks.outputs.base import SCORE_OUTPUT, ExplainTarget, Output

__all__ = ["SCORE_TARGET", "ScoreOutput", "rmse", "score_loss"]

#: The explanation target naming the score.
SCORE_TARGET = "score"


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
