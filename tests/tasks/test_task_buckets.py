"""The buckets task: Poor / Average / Great cut at the training fold's terciles, trained, served,
scored, ranked, explained; cross-validation and crop advice refuse what does not fit."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pawtf import tasks
from pawtf.config import ExplainConfig
from pawtf.data.schema import FLAGS, ID_COLUMN, TARGET_COLUMN
from pawtf.models.popularity import build_model
from pawtf.runs import RunFolder

from task_helpers import cfg_for, photo_bytes, run_cfg


def test_buckets_model_outputs_class_probabilities():
    model = build_model(cfg_for("buckets"))
    assert [t.name for t in model.inputs] == ["image", "metadata"]
    assert list(model.output_names) == ["buckets"]
    pred = tasks.get("buckets").as_dict(model.predict_on_batch(
        {"image": np.zeros((2, 32, 32, 3), np.float32), "metadata": np.zeros((2, len(FLAGS)), np.float32)}))
    np.testing.assert_allclose(pred["buckets"].sum(-1), 1.0, atol=1e-5)


def test_buckets_run_cuts_terciles_on_the_training_fold(task_runs, tiny_demo):
    run = RunFolder(task_runs / "buckets")
    metrics = run.metrics()
    table = pd.read_csv(tiny_demo / "train.csv")
    split = run.split()
    train_ids = set(split[split.role == "train"][ID_COLUMN])
    train_scores = table[table[ID_COLUMN].isin(train_ids)][TARGET_COLUMN]
    assert metrics["bucket_edges"] == list(tasks.bucket_edges(train_scores))
    for key in ("bucket_accuracy", "bucket_macro_f1", "baseline_bucket_accuracy", "baseline_bucket_macro_f1"):
        assert 0 <= metrics[key] <= 1
    assert np.sum(metrics["bucket_confusion"]) == metrics["n_val"]


def test_buckets_model_serves_probabilities_and_label(task_exports, tiny_demo):
    from pawtf.export import read_info

    fn = tf.saved_model.load(str(task_exports["buckets"])).signatures["serving_default"]
    out = fn(image_bytes=tf.constant(photo_bytes(tiny_demo)), metadata=tf.zeros([3, len(FLAGS)]))
    probs = out["bucket_probabilities"].numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    labels = [b.decode() for b in out["bucket"].numpy()]
    assert labels == [tasks.BUCKET_LABELS[i] for i in probs.argmax(-1)]
    info = read_info(task_exports["buckets"])
    assert info["bucket_labels"] == list(tasks.BUCKET_LABELS) and len(info["bucket_edges"]) == 2


def test_predict_agrees_between_run_and_savedmodel_for_buckets(task_runs, task_exports, tiny_demo):
    from pawtf.predict import load_scorer, predict, rank

    flags_csv = tiny_demo / "train.csv"
    a = predict(load_scorer(task_runs / "buckets"), [tiny_demo / "train"], flags_csv, progress=False)
    b = predict(load_scorer(task_exports["buckets"]), [tiny_demo / "train"], flags_csv, progress=False)
    assert all(s.score is None and s.extra["bucket"] in tasks.BUCKET_LABELS for s in a)
    assert all(s.label == s.extra["bucket"] for s in a + b)
    diffs = [abs(x.extra["p_great"] - y.extra["p_great"]) for x, y in zip(a, b)]
    assert max(diffs) < 0.05  # the serving decoder vs the training reader
    ranked = rank(load_scorer(task_runs / "buckets"), [tiny_demo / "train"], flags_csv, progress=False)
    values = [s.rank_value for s in ranked]
    assert values == sorted(values, reverse=True)


def test_explain_targets_a_bucket(task_runs, tiny_demo, tmp_path):
    from pawtf.explain.batch import explain_files

    photos = sorted((tiny_demo / "train").glob("*.jpg"))[:3]
    summary = explain_files(task_runs / "buckets", photos, ExplainConfig(methods=("vanilla",), scores=False),
                            out=tmp_path / "ex", target="Poor", metadata=tiny_demo / "train.csv",
                            progress=False)
    assert summary["n_images"] == 3 and summary["target"] == "Poor"
    record = json.loads(next((tmp_path / "ex").glob("*.json")).read_text())
    assert 0 <= record["score"] <= 1  # the probability of Poor


def test_cv_refuses_a_finished_fold_with_other_settings(task_runs, tiny_demo, tmp_path):
    from pawtf.train import RunExistsError, cross_validate

    shutil.copytree(task_runs / "buckets", tmp_path / "cv" / "fold0")
    with pytest.raises(RunExistsError, match="fold0 holds a finished fold with other settings "
                                             r"\(model.task: 'buckets' -> 'multitask'"):
        cross_validate(run_cfg(tiny_demo, "multitask"), tmp_path / "cv", verbose=0)


def test_crop_advice_refuses_a_buckets_model(task_runs, tiny_demo):
    from pawtf.crop import advise_crop
    from pawtf.predict import load_scorer

    photo = sorted((tiny_demo / "train").glob("*.jpg"))[0]
    with pytest.raises(ValueError, match="a buckets model predicts classes"):
        advise_crop(load_scorer(task_runs / "buckets"), photo)
