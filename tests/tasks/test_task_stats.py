"""pawtf.tasks.stats: what the heads learn from the training fold, in plain numbers."""

import numpy as np
import pandas as pd
import pytest

from pawtf import tasks
from pawtf.data.schema import FLAGS, TARGET_COLUMN


def test_bucket_edges_are_training_terciles_and_classes_follow_them():
    scores = np.arange(1, 101)
    edges = tasks.bucket_edges(scores)
    assert edges == (34.0, 67.0)
    classes = tasks.bucket_of(scores, edges)
    assert np.bincount(classes).tolist() == [34, 33, 33]
    assert tasks.bucket_of([34.0, 34.01, 67.0, 67.5], edges).tolist() == [0, 1, 1, 2]


def test_stats_come_from_the_rows_given():
    rows = pd.DataFrame({TARGET_COLUMN: [10, 20, 90, 95], **{f: [0, 0, 0, 1] for f in FLAGS}})
    stats = tasks.TaskStats.from_rows(rows)
    assert stats.score_mean == pytest.approx(53.75)
    assert stats.flag_prevalence == (0.25,) * len(FLAGS)
    pos, neg = stats.flag_weights("balanced")
    np.testing.assert_allclose(pos, 2.0)  # 0.5 / 0.25: positives weigh as much as negatives in all
    np.testing.assert_allclose(neg, 0.5 / 0.75)
    pos, neg = stats.flag_weights("none")
    assert pos.tolist() == neg.tolist() == [1.0] * len(FLAGS)
    with pytest.raises(ValueError, match="flag_balance"):
        stats.flag_weights("oversample")


def test_rare_flag_weight_is_capped():
    rows = pd.DataFrame({TARGET_COLUMN: np.arange(1000), **{f: np.zeros(1000) for f in FLAGS}})
    rows.loc[0, "Collage"] = 1
    pos, _ = tasks.TaskStats.from_rows(rows).flag_weights("balanced")
    assert pos[FLAGS.index("Collage")] == pytest.approx(tasks.MAX_FLAG_WEIGHT)


def test_without_flag_columns_every_prevalence_is_a_half():
    stats = tasks.TaskStats.from_rows(pd.DataFrame({TARGET_COLUMN: [1.0, 2.0, 3.0]}))
    assert stats.flag_prevalence == (0.5,) * len(FLAGS)
    assert stats.to_dict()["flag_prevalence"]["Eyes"] == 0.5


def test_expected_bucket_ranks_by_the_mean_class():
    assert tasks.expected_bucket([[1, 0, 0], [0, 0, 1], [0.5, 0, 0.5]]).tolist() == [0.0, 2.0, 1.0]
