"""pawtf.tasks.outputs: each output's losses, figures, predict columns, SavedModel outputs and
explanation targets."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pawtf import tasks
from pawtf.data.schema import FLAGS, TARGET_COLUMN
from pawtf.tasks.outputs import BucketsOutput, FlagsOutput, ScoreOutput


def rows_and_stats(n=60, seed=0):
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame({TARGET_COLUMN: rng.integers(1, 100, n), **{f: rng.integers(0, 2, n) for f in FLAGS}})
    return rows, tasks.TaskStats.from_rows(rows)


def test_flag_loss_is_class_weighted_cross_entropy():
    y = np.array([[1.0, 0.0] * 6, [0.0, 1.0] * 6], np.float32)
    p = np.full_like(y, 0.8)
    pos, neg = np.full(12, 3.0, np.float32), np.full(12, 0.5, np.float32)
    got = keras.ops.convert_to_numpy(tasks.flag_loss(pos, neg)(y, p))
    want = -np.mean(3.0 * y * np.log(0.8) + 0.5 * (1 - y) * np.log(0.2), axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_bce_score_loss_is_on_the_unit_scale():
    loss = tasks.score_loss("bce")
    assert float(loss(np.array([[50.0]]), np.array([[50.0]]))) == pytest.approx(np.log(2), rel=1e-3)
    with pytest.raises(ValueError, match="unknown loss"):
        tasks.score_loss("mae")


def test_rmse_is_scikit_learns():
    assert tasks.rmse([0, 0, 0, 0], [3, 4, 0, 0]) == pytest.approx(2.5)


def test_each_output_reports_its_figures_beside_their_baselines():
    rows, stats = rows_and_stats()
    rows["Blur"] = 0  # one class only: no AUC
    truth = tasks.bucket_of(rows[TARGET_COLUMN], stats.bucket_edges)
    score = ScoreOutput().evaluate(rows[TARGET_COLUMN].to_numpy(float) + 2.0, rows, stats)
    assert score["val_rmse"] == pytest.approx(2.0) and score["baseline_rmse"] > 20
    flags = FlagsOutput().evaluate(rows[list(FLAGS)].to_numpy(float) * 0.6 + 0.2, rows, stats)
    assert flags["flag_auc"]["Blur"] is None
    assert flags["mean_flag_auc"] == pytest.approx(1.0) and flags["baseline_flag_auc"] == 0.5
    buckets = BucketsOutput().evaluate(np.eye(3)[truth], rows, stats)
    assert buckets["bucket_accuracy"] == 1.0 and buckets["bucket_macro_f1"] == 1.0
    assert buckets["baseline_bucket_accuracy"] == pytest.approx(np.mean(truth == stats.majority_bucket))
    assert np.trace(buckets["bucket_confusion"]) == 60
    for output, figures in ((ScoreOutput(), score), (FlagsOutput(), flags), (BucketsOutput(), buckets)):
        for key, value in output.baselines(rows, stats).items():
            assert figures[key] == pytest.approx(value)


def test_signature_outputs_round_trip_and_match_their_names():
    probs = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]], np.float32)
    flags = np.random.default_rng(0).uniform(size=(2, len(FLAGS))).astype(np.float32)
    score = np.array([[12.0], [80.0]], np.float32)
    for output, values in ((ScoreOutput(), score), (FlagsOutput(), flags), (BucketsOutput(), probs)):
        out = output.signature(tf.constant(values))
        assert sorted(out) == sorted(output.signature_names)
        back = output.from_signature({k: v.numpy() for k, v in out.items()})
        np.testing.assert_allclose(back.reshape(values.shape), values)
    buckets = BucketsOutput().signature(tf.constant(probs))
    assert [b.decode() for b in buckets["bucket"].numpy()] == ["Great", "Poor"]
    flag_out = FlagsOutput().signature(tf.constant(flags))
    np.testing.assert_allclose(flag_out["flag_subject_focus"], flags[:, 0])
    assert ScoreOutput().signature(tf.constant(score))["pawpularity"].shape == (2,)


def test_predict_columns_rank_values_and_labels():
    probs = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    columns = BucketsOutput().columns(probs)
    assert columns[0] == {"bucket": "Great", "p_poor": 0.2, "p_average": 0.3, "p_great": 0.5}
    np.testing.assert_allclose(BucketsOutput().rank_values(probs), [1.3, 0.5])
    assert BucketsOutput().labels(probs) == ["Great", "Poor"]
    assert ScoreOutput().labels(np.array([[41.26]])) == ["41.3"]
    assert list(FlagsOutput().columns(np.full((1, 12), 0.25))[0]) == list(FLAGS)
    with pytest.raises(NotImplementedError, match="does not rank"):
        FlagsOutput().rank_values(np.zeros((1, 12)))


def test_explanation_targets_carry_their_curve_scale():
    (score,) = ScoreOutput().explain_targets()
    assert (score.name, score.output, score.scale) == ("score", "pawpularity", 100.0)
    eyes = FlagsOutput().explain_targets()[1]
    assert (eyes.name, eyes.output, eyes.unit, eyes.scale) == ("Eyes", "flags", 1, 1.0)
    assert [t.name for t in BucketsOutput().explain_targets()] == list(tasks.BUCKET_LABELS)
