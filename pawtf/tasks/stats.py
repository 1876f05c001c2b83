"""What a task learns from the training fold, in plain numbers: score mean and variance, flag rates and
their class weights, the buckets' tercile edges and majority class, the rater's "good" edge and rate.

Everything here comes from the training fold only (never from validation rows), so the baselines and
losses built on it are honest.

Example:

>>> import pandas as pd
>>> rows = pd.DataFrame({"Pawpularity": [10, 20, 30, 40, 50, 60]})
>>> stats = TaskStats.from_rows(rows)
>>> stats.bucket_edges
(26.67, 43.33)
>>> bucket_of([10, 26.67, 30, 60], stats.bucket_edges).tolist()
[0, 0, 1, 2]
"""

from __future__ import annotations

import dataclasses
from typing import Any, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: the tasks are read without importing pandas
    import pandas as pd

from pawtf.data.schema import FLAGS, GOOD_COLUMN, TARGET_COLUMN

__all__ = ["BUCKET_LABELS", "FLAG_BALANCES", "GOOD_COLUMN", "MAX_FLAG_WEIGHT", "TaskStats", "bucket_edges",
           "bucket_of", "expected_bucket"]

#: The buckets' labels, from the lowest scores to the highest.
BUCKET_LABELS = ("Poor", "Average", "Great")
#: A flag's class weight never exceeds this (a flag seen once would otherwise dominate the loss).
MAX_FLAG_WEIGHT = 50.0
#: How the flags' cross-entropy weighs each flag's positive and negative rows.
FLAG_BALANCES = ("balanced", "none")


def bucket_edges(scores) -> tuple[float, float]:
    """The score terciles that cut Poor | Average | Great.

    Args:
        scores: the training fold's scores.

    Returns:
        The two edges, rounded to 0.01.
    """
    q1, q2 = np.quantile(np.asarray(scores, float), [1 / 3, 2 / 3])
    return round(float(q1), 2), round(float(q2), 2)


def bucket_of(scores, edges) -> np.ndarray:
    """The class of each score: 0 Poor (<= first edge), 1 Average (<= second edge), 2 Great.

    Args:
        scores: scores (0-100).
        edges: the two edges of `bucket_edges`.

    Returns:
        An integer array of classes.
    """
    return np.searchsorted(np.asarray(edges, float), np.asarray(scores, float), side="left")


def expected_bucket(probabilities) -> np.ndarray:
    """A buckets model's ranking value: the expected class index (0 Poor .. 2 Great).

    >>> expected_bucket([[0.0, 0.5, 0.5]]).tolist()
    [1.5]
    """
    p = np.asarray(probabilities, float)
    return p @ np.arange(p.shape[-1], dtype=float)


@dataclasses.dataclass
class TaskStats:
    """What the heads and their losses learn from the training fold (never from validation rows)."""

    score_mean: float
    score_var: float
    flag_prevalence: tuple[float, ...]
    bucket_edges: tuple[float, float]
    majority_bucket: int
    good_edge: float = 100.0  # the rater: a photo scored above it is good (without a Good column)
    good_rate: float = 0.5  # the rater: the share of good photos

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, good_above: float | None = None) -> "TaskStats":
        """The statistics of training `rows` (a score column, and the 12 flags where present).

        Args:
            rows: the training fold's rows.
            good_above: the rater's edge (``--good-above``); None: the top tercile's edge, the buckets'
                second edge (so a third of the training photos are good).

        Returns:
            The `TaskStats`; without flag columns every prevalence is 0.5.
        """
        scores = rows[TARGET_COLUMN].to_numpy(float)
        if all(f in rows for f in FLAGS):
            prevalence = tuple(float(v) for v in rows[list(FLAGS)].to_numpy(float).mean(0))
        else:
            prevalence = (0.5,) * len(FLAGS)
        edges = bucket_edges(scores)
        majority = int(np.bincount(bucket_of(scores, edges), minlength=len(BUCKET_LABELS)).argmax())
        stats = cls(float(scores.mean()), float(scores.var()) or 1.0, prevalence, edges, majority,
                    float(edges[1] if good_above is None else good_above))
        stats.good_rate = float(stats.good_labels(rows).mean()) if len(rows) else 0.5
        return stats

    def good_labels(self, rows: pd.DataFrame) -> np.ndarray:
        """The rater's labels of `rows` (1 good, 0 retake): the :data:`GOOD_COLUMN` where the table has
        one, else whether the score is above :attr:`good_edge`.

        >>> import pandas as pd
        >>> stats = TaskStats.from_rows(pd.DataFrame({"Pawpularity": [10, 20, 30, 40, 50, 60]}))
        >>> stats.good_edge, stats.good_labels(pd.DataFrame({"Pawpularity": [43, 44]})).tolist()
        (43.33, [0, 1])
        """
        if GOOD_COLUMN in rows:
            return rows[GOOD_COLUMN].to_numpy(np.int32)
        return (rows[TARGET_COLUMN].to_numpy(float) > self.good_edge).astype(np.int32)

    def good_weights(self) -> tuple[float, float]:
        """The rater's class weights (good rows, retake rows): each class half the weight, as
        scikit-learn's ``class_weight="balanced"`` (the study's data was 6 bad to 1 good), capped at
        :data:`MAX_FLAG_WEIGHT`."""
        p = min(max(self.good_rate, 0.5 / MAX_FLAG_WEIGHT), 1 - 0.5 / MAX_FLAG_WEIGHT)
        return 0.5 / p, 0.5 / (1 - p)

    def flag_weights(self, balance: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-flag weights of positive and negative rows.

        Args:
            balance: ``"balanced"`` gives each class of each flag half the weight (as scikit-learn's
                ``class_weight="balanced"``), capped at `MAX_FLAG_WEIGHT`; ``"none"`` weighs every row 1.

        Returns:
            (positive weights, negative weights), 12 each.

        Raises:
            ValueError: for another `balance`.
        """
        n = len(FLAGS)
        if balance == "none":
            return np.ones(n, np.float32), np.ones(n, np.float32)
        if balance != "balanced":
            raise ValueError(f"unknown flag_balance {balance!r}; expected 'balanced' or 'none'")
        p = np.clip(np.asarray(self.flag_prevalence, float), 0.5 / MAX_FLAG_WEIGHT, 1 - 0.5 / MAX_FLAG_WEIGHT)
        return (0.5 / p).astype(np.float32), (0.5 / (1 - p)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The statistics as JSON values (``train_stats`` in a run's metrics)."""
        return {"score_mean": self.score_mean, "score_var": self.score_var,
                "flag_prevalence": dict(zip(FLAGS, self.flag_prevalence)),
                "bucket_edges": list(self.bucket_edges), "majority_bucket": self.majority_bucket,
                "good_edge": self.good_edge, "good_rate": self.good_rate}
