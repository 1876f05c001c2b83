"""The four tasks: targets, losses and figures (pawtf.tasks), the models they build, and for each task a
tiny run trained, exported, scored and explained end to end.

Runs use efficientnet_lite0 with its offline ImageNet weights at 64 px: a backbone with random weights
gives all but zero features at this size, so flags and buckets would not depend on the photo.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pawtf import tasks
from pawtf.config import ModelConfig, RunConfig
from pawtf.data.schema import FLAGS, ID_COLUMN, TARGET_COLUMN
from pawtf.models.popularity import build_head_model, build_model

SIZE = 64


# ---------------------------------------------------------------------------------------------------------
# pawtf.tasks: plain numbers


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


def test_flag_loss_is_class_weighted_cross_entropy():
    y = np.array([[1.0, 0.0] * 6, [0.0, 1.0] * 6], np.float32)
    p = np.full_like(y, 0.8)
    pos, neg = np.full(12, 3.0, np.float32), np.full(12, 0.5, np.float32)
    got = keras.ops.convert_to_numpy(tasks.flag_loss(pos, neg)(y, p))
    want = -np.mean(3.0 * y * np.log(0.8) + 0.5 * (1 - y) * np.log(0.2), axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_evaluate_reports_each_figure_with_its_baseline():
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({TARGET_COLUMN: rng.integers(1, 100, 60),
                         **{f: rng.integers(0, 2, 60) for f in FLAGS}})
    rows["Blur"] = 0  # one class only: no AUC
    stats = tasks.TaskStats.from_rows(rows)
    flags = rows[list(FLAGS)].to_numpy(float)
    truth = tasks.bucket_of(rows[TARGET_COLUMN], stats.bucket_edges)
    predictions = {"pawpularity": rows[TARGET_COLUMN].to_numpy(float) + 2.0,
                   "flags": flags * 0.6 + 0.2,
                   "buckets": np.eye(3)[truth]}
    out = tasks.evaluate("multitask", predictions, rows, stats)
    assert out["val_rmse"] == pytest.approx(2.0) and out["baseline_rmse"] > 20
    assert out["flag_auc"]["Blur"] is None
    assert out["mean_flag_auc"] == pytest.approx(1.0) and out["baseline_flag_auc"] == 0.5
    assert out["bucket_accuracy"] == 1.0 and out["bucket_macro_f1"] == 1.0
    assert out["baseline_bucket_accuracy"] == pytest.approx(np.mean(truth == stats.majority_bucket))
    assert np.trace(out["bucket_confusion"]) == 60


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match="unknown task 'ranking'; choose from score, multitask"):
        tasks.check_task("ranking")


# ---------------------------------------------------------------------------------------------------------
# Models


def cfg_for(task, **kw) -> ModelConfig:
    return ModelConfig(task=task, backbone="mobilenetv2", weights=None, image_size=32,
                       embedding_units=16, head_units=16, **kw)


@pytest.mark.parametrize("task, inputs, outputs", [
    ("score", ["image", "metadata"], ["pawpularity"]),
    ("multitask", ["image"], ["flags", "pawpularity"]),
    ("attribute-fed", ["image"], ["flags", "pawpularity"]),
    ("buckets", ["image", "metadata"], ["buckets"]),
])
def test_each_task_builds_its_inputs_and_outputs(task, inputs, outputs):
    prior = np.linspace(0.05, 0.9, len(FLAGS))
    model = build_model(cfg_for(task), initial_score=30.0, flag_prior=prior)
    assert [t.name for t in model.inputs] == inputs
    assert list(model.output_names) == outputs
    x = {"image": np.zeros((2, 32, 32, 3), np.float32)}
    if "metadata" in inputs:
        x["metadata"] = np.zeros((2, len(FLAGS)), np.float32)
    pred = tasks.as_dict(model.predict_on_batch(x), task)
    if "flags" in pred:
        assert pred["flags"].shape == (2, len(FLAGS))
        np.testing.assert_allclose(pred["flags"][0], prior, atol=0.05)  # starts at the prevalences
    if "buckets" in pred:
        np.testing.assert_allclose(pred["buckets"].sum(-1), 1.0, atol=1e-5)


def test_attribute_fed_score_head_reads_the_predicted_flags():
    model = build_model(cfg_for("attribute-fed"))
    fed = model.get_layer("metadata_dense0").input
    assert fed._keras_history.operation.name == "flags"
    with pytest.raises(ValueError, match="use_metadata=True"):
        build_model(cfg_for("attribute-fed", use_metadata=False))


def test_multitask_head_learns_flags_and_score_from_features():
    """On features that carry the flags (and the score), the weighted losses train both heads."""
    rng = np.random.default_rng(0)
    n, dim = 1000, 32
    features = rng.normal(size=(n, dim)).astype(np.float32)
    logits = features[:, :len(FLAGS)] * 3 - 2.5  # rare flags (~15%)
    flags = (rng.uniform(size=logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    score = np.clip(38 + 12 * features[:, -1] + 6 * flags[:, 0], 1, 100)
    rows = pd.DataFrame({TARGET_COLUMN: score, **{f: flags[:, j] for j, f in enumerate(FLAGS)}})
    train, val = rows.iloc[:800], rows.iloc[800:]
    stats = tasks.TaskStats.from_rows(train)
    cfg = ModelConfig(task="multitask", embedding_units=32, head_units=32, dropout=0.1)
    keras.utils.set_random_seed(0)
    head = build_head_model(cfg, dim, stats.score_mean, stats.flag_prevalence)
    head.compile(optimizer=keras.optimizers.Adam(3e-3), **tasks.compile_args(cfg, stats))
    head.fit(features[:800], tasks.targets("multitask", train, stats), epochs=40, batch_size=32, verbose=0)
    out = tasks.evaluate("multitask", head.predict(features[800:], verbose=0), val, stats)
    oracle = tasks.flag_metrics(flags[800:], logits[800:])["mean_flag_auc"]  # knows the true odds: 0.93
    assert out["mean_flag_auc"] > oracle - 0.08  # 0.88 measured
    assert out["val_rmse"] < 0.4 * out["baseline_rmse"]  # 2.9 vs 13.5 measured


# ---------------------------------------------------------------------------------------------------------
# Runs: train, export, predict, explain


def run_cfg(data_dir, task) -> RunConfig:
    cfg = RunConfig()
    cfg.data.data_dir, cfg.data.folds = str(data_dir), 4
    cfg.model.task = task
    cfg.model.backbone, cfg.model.weights, cfg.model.image_size = "efficientnet_lite0", "imagenet", SIZE
    cfg.model.embedding_units, cfg.model.head_units = 16, 16
    cfg.train.epochs, cfg.train.batch_size, cfg.train.oof_folds = 1, 16, 3
    return cfg


@pytest.fixture(scope="module")
def runs(tiny_demo, tmp_path_factory):
    """One trained run folder per task."""
    from pawtf.train import train

    import shutil

    root = tmp_path_factory.mktemp("task_runs")
    for task in ("multitask", "buckets"):
        train(run_cfg(tiny_demo, task), root / task, verbose=0)
    # attribute-fed's stage 1 is this very multitask run (same settings, checked when it is reused):
    # start from it rather than train it twice
    shutil.copytree(root / "multitask", root / "attribute-fed" / "stage1")
    train(run_cfg(tiny_demo, "attribute-fed"), root / "attribute-fed", verbose=0)
    return root


def test_multitask_run_reports_flag_auc_and_rmse(runs):
    metrics = json.loads((runs / "multitask" / "metrics.json").read_text())
    assert metrics["task"] == "multitask"
    assert set(metrics["flag_auc"]) == set(FLAGS)
    assert 0 <= metrics["mean_flag_auc"] <= 1 and metrics["baseline_flag_auc"] == 0.5
    assert np.isfinite(metrics["val_rmse"]) and metrics["baseline_rmse"] > 5
    history = pd.read_csv(runs / "multitask" / "history.csv")
    assert {"val_pawpularity_rmse", "val_flags_auc", "val_loss"} <= set(history.columns)


def test_buckets_run_cuts_terciles_on_the_training_fold(runs, tiny_demo):
    metrics = json.loads((runs / "buckets" / "metrics.json").read_text())
    table = pd.read_csv(tiny_demo / "train.csv")
    split = pd.read_csv(runs / "buckets" / "split.csv")
    train_ids = set(split[split.role == "train"][ID_COLUMN])
    train_scores = table[table[ID_COLUMN].isin(train_ids)][TARGET_COLUMN]
    assert metrics["bucket_edges"] == list(tasks.bucket_edges(train_scores))
    for key in ("bucket_accuracy", "bucket_macro_f1", "baseline_bucket_accuracy", "baseline_bucket_macro_f1"):
        assert 0 <= metrics[key] <= 1
    assert np.sum(metrics["bucket_confusion"]) == metrics["n_val"]


def test_attribute_fed_trains_stage_two_on_out_of_fold_flags(runs):
    run = runs / "attribute-fed"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "attribute-fed" and metrics["oof_folds"] == 3
    assert {"stage1", "stage2"} <= set(metrics) and np.isfinite(metrics["val_rmse"])
    split = pd.read_csv(run / "split.csv")
    predicted = pd.read_csv(run / "stage1" / "predicted_flags.csv")
    assert 0 <= metrics["oof_mean_flag_auc"] <= 1
    roles = dict(zip(predicted[ID_COLUMN], predicted.role))
    assert all(roles[i] == ("oof" if r == "train" else "val") for i, r in zip(split[ID_COLUMN], split.role))
    assert predicted[list(FLAGS)].to_numpy().min() >= 0 and predicted[list(FLAGS)].to_numpy().max() <= 1
    # Stage 2 was trained with those predicted flags in place of the true ones, its image half frozen
    # at stage 1's weights; the served model joins stage 1's flags head to stage 2's score head.
    from pawtf.runs import load_run

    served, stage1, stage2 = (load_run(p).model for p in (run, run / "stage1", run / "stage2"))

    def same(a, b, layer, other=None):
        return all(np.array_equal(x, y) for x, y in zip(a.get_layer(layer).get_weights(),
                                                        b.get_layer(other or layer).get_weights()))

    assert same(served, stage1, "flags_embedding", "image_embedding") and same(served, stage1, "flags_logits")
    assert same(served, stage2, "image_embedding") and same(served, stage2, "score_dense")
    assert not same(stage2, stage1, "image_embedding")  # stage 2 trains its own
    assert same(stage2, stage1, "stem_conv")  # the backbone is stage 1's
    # served(image) == stage2(image, stage1's flags for the image)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)
    out = served.predict_on_batch({"image": images})
    flags = stage1.predict_on_batch({"image": images})["flags"]
    np.testing.assert_allclose(out["flags"], flags, atol=1e-5)
    np.testing.assert_allclose(out["pawpularity"], stage2.predict_on_batch(
        {"image": images, "metadata": flags}), atol=1e-3)


def test_attribute_fed_resumes_from_its_finished_stage(runs, tiny_demo, tmp_path):
    """A run killed after stage 1 keeps stage 1 (and the predicted flags) when started again."""
    import shutil

    from pawtf.train import train

    run = tmp_path / "fed"
    shutil.copytree(runs / "attribute-fed", run)
    for name in ("metrics.json", "model.keras"):
        (run / name).unlink()
    shutil.rmtree(run / "stage2")
    stage1_model = (run / "stage1" / "model.keras").stat().st_mtime_ns
    flags_before = (run / "stage1" / "predicted_flags.csv").read_text()
    metrics = train(run_cfg(tiny_demo, "attribute-fed"), run, verbose=0)
    assert (run / "stage1" / "model.keras").stat().st_mtime_ns == stage1_model
    assert (run / "stage1" / "predicted_flags.csv").read_text() == flags_before
    assert (run / "stage2" / "metrics.json").exists() and np.isfinite(metrics["val_rmse"])


def test_a_finished_stage_with_other_settings_is_refused(runs, tiny_demo, tmp_path):
    import shutil

    from pawtf.train import RunExistsError, train

    run = tmp_path / "fed"
    (run / "stage1").parent.mkdir()
    shutil.copytree(runs / "buckets", run / "stage1")  # a finished run, but not this run's stage 1
    with pytest.raises(RunExistsError, match="stage1 holds a finished stage with other settings"):
        train(run_cfg(tiny_demo, "attribute-fed"), run, verbose=0)


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    from pawtf.export import export
    from pawtf.runs import load_run

    root = tmp_path_factory.mktemp("task_exports")
    return {task: export(load_run(runs / task), root / task) for task in ("multitask", "buckets",
                                                                          "attribute-fed")}


def photo_bytes(tiny_demo, n=3):
    return [p.read_bytes() for p in sorted((tiny_demo / "train").glob("*.jpg"))[:n]]


@pytest.mark.parametrize("task", ["multitask", "attribute-fed"])
def test_flag_models_serve_score_and_named_flags(exports, tiny_demo, task):
    from pawtf.export import read_info

    loaded = tf.saved_model.load(str(exports[task]))
    fn = loaded.signatures["serving_default"]
    assert set(fn.structured_input_signature[1]) == {"image_bytes"}  # the image alone
    out = fn(image_bytes=tf.constant(photo_bytes(tiny_demo)))
    assert out["pawpularity"].shape == (3,) and out["flags"].shape == (3, len(FLAGS))
    np.testing.assert_allclose(out["flag_subject_focus"], out["flags"][:, 0])
    np.testing.assert_allclose(out["flag_blur"], out["flags"][:, -1])
    info = read_info(exports[task])
    assert info["task"] == task and info["output_flags"] == list(FLAGS)


def test_buckets_model_serves_probabilities_and_label(exports, tiny_demo):
    from pawtf.export import read_info

    fn = tf.saved_model.load(str(exports["buckets"])).signatures["serving_default"]
    out = fn(image_bytes=tf.constant(photo_bytes(tiny_demo)), metadata=tf.zeros([3, len(FLAGS)]))
    probs = out["bucket_probabilities"].numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    labels = [b.decode() for b in out["bucket"].numpy()]
    assert labels == [tasks.BUCKET_LABELS[i] for i in probs.argmax(-1)]
    info = read_info(exports["buckets"])
    assert info["bucket_labels"] == list(tasks.BUCKET_LABELS) and len(info["bucket_edges"]) == 2


@pytest.mark.parametrize("source", ["run", "savedmodel"])
def test_predict_writes_predicted_flags_next_to_the_score(runs, exports, tiny_demo, tmp_path, source):
    from pawtf.predict import load_scorer, predict, write_scores

    scorer = load_scorer(runs / "multitask" if source == "run" else exports["multitask"])
    scores = predict(scorer, [tiny_demo / "train"], progress=False)
    write_scores(scores, tmp_path / "scores.csv")
    table = pd.read_csv(tmp_path / "scores.csv")
    assert list(table.columns) == ["path", "score", *FLAGS, "error"]
    assert len(table) == 60 and table.score.between(0, 100).all()
    assert table[list(FLAGS)].stack().between(0, 1).all()


def test_predict_agrees_between_run_and_savedmodel_for_buckets(runs, exports, tiny_demo):
    from pawtf.predict import load_scorer, predict, rank

    flags_csv = tiny_demo / "train.csv"
    a = predict(load_scorer(runs / "buckets"), [tiny_demo / "train"], flags_csv, progress=False)
    b = predict(load_scorer(exports["buckets"]), [tiny_demo / "train"], flags_csv, progress=False)
    assert all(s.score is None and s.extra["bucket"] in tasks.BUCKET_LABELS for s in a)
    diffs = [abs(x.extra["p_great"] - y.extra["p_great"]) for x, y in zip(a, b)]
    assert max(diffs) < 0.05  # the serving decoder vs the training reader
    ranked = rank(load_scorer(runs / "buckets"), [tiny_demo / "train"], flags_csv, progress=False)
    values = [s.rank_value for s in ranked]
    assert values == sorted(values, reverse=True)


def test_explain_targets_a_flag_and_a_bucket(runs, tiny_demo, tmp_path):
    from pawtf.explain import make_explainer
    from pawtf.explain.base import target_for, target_names
    from pawtf.explain.batch import explain_files
    from pawtf.runs import load_run

    multitask = load_run(runs / "multitask").model
    assert target_names(multitask) == ["score", *FLAGS]
    assert target_for(multitask, "subject_focus").output == "flags"
    assert target_for(multitask, "Eyes").unit == FLAGS.index("Eyes")
    with pytest.raises(ValueError, match="targets: score, Subject Focus"):
        target_for(multitask, "Poor")
    images = np.stack([np.asarray(tf.image.resize(tf.io.decode_jpeg(b), (SIZE, SIZE)))
                       for b in photo_bytes(tiny_demo, 2)]).astype(np.float32)
    eyes = make_explainer("gradcam", multitask, target=target_for(multitask, "Eyes"))
    score = make_explainer("gradcam", multitask, target=target_for(multitask, "score"))
    np.testing.assert_allclose(eyes.predict(images), multitask.predict_on_batch(images)["flags"][:, 1],
                               atol=1e-5)
    assert not np.allclose(eyes(images), score(images))  # different heads, different maps

    photos = sorted((tiny_demo / "train").glob("*.jpg"))[:3]
    summary = explain_files(runs / "buckets", photos, out=tmp_path / "ex", methods="vanilla",
                            target="Poor", metadata=tiny_demo / "train.csv", scores=False, progress=False)
    assert summary["n_images"] == 3 and summary["target"] == "Poor"
    record = json.loads(next((tmp_path / "ex").glob("*.json")).read_text())
    assert 0 <= record["score"] <= 1  # the probability of Poor


def test_cli_trains_with_task_and_explains_a_flag(tiny_demo, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cli_run"
    args = [sys.executable, "-m", "pawtf", "train", "--data", str(tiny_demo), "--out", str(out),
            "--task", "multitask", "--backbone", "mobilenetv2", "--weights", "none", "--image-size", "32",
            "--epochs", "1", "--batch-size", "16", "--folds", "4", "--flags-loss-weight", "2"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    cfg = RunConfig.load(out / "config.json")
    assert cfg.model.task == "multitask" and cfg.model.flags_loss_weight == 2.0
    bad = subprocess.run([sys.executable, "-m", "pawtf", "explain", str(tiny_demo / "train"), "--model",
                          str(out), "--target", "Great", "--methods", "vanilla", "--no-scores",
                          "--out", str(tmp_path / "ex")], capture_output=True, text=True)
    assert bad.returncode != 0 and "cannot explain 'Great'; targets: score, Subject Focus" in bad.stderr


def test_out_of_fold_flags_ignore_each_rows_own_labels(runs, tiny_demo, tmp_path):
    """Flipping the flags of one inner fold's rows changes every other row's predicted flags, and not
    theirs: a row's flags come from a head that never saw its labels."""
    import dataclasses

    from pawtf.data.split import make_folds
    from pawtf.runs import load_run
    from pawtf.train import fold_data, load_table, predicted_flags

    cfg = run_cfg(tiny_demo, "multitask")  # stage 1's settings
    data = fold_data(cfg, load_table(cfg, progress=False))
    stage1 = load_run(runs / "attribute-fed" / "stage1").model
    inner = make_folds(data.train, k=cfg.train.oof_folds, seed=cfg.train.seed, n_bins=cfg.data.score_bins)
    flipped = data.train.copy()
    flipped.loc[inner == 0, list(FLAGS)] = 1 - flipped.loc[inner == 0, list(FLAGS)]
    keras.utils.set_random_seed(0)
    a = predicted_flags(stage1, cfg, data, tmp_path / "a.csv", verbose=0)
    keras.utils.set_random_seed(0)
    b = predicted_flags(stage1, cfg, dataclasses.replace(data, train=flipped), tmp_path / "b.csv", verbose=0)
    held, others = data.train[ID_COLUMN][inner == 0], data.train[ID_COLUMN][inner != 0]
    np.testing.assert_allclose(a.loc[held, list(FLAGS)], b.loc[held, list(FLAGS)], atol=1e-5)
    assert np.abs(a.loc[others, list(FLAGS)].to_numpy() - b.loc[others, list(FLAGS)].to_numpy()).max() > 0.01
    np.testing.assert_allclose(a[a.role == "val"][list(FLAGS)], b[b.role == "val"][list(FLAGS)])


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c.model, "use_metadata", False), "needs use_metadata=True"),
    (lambda c: setattr(c.train, "oof_folds", 1), "needs oof_folds >= 2"),
    (lambda c: setattr(c.model, "flag_balance", "oversample"), "unknown flag_balance"),
])
def test_bad_task_settings_fail_before_any_work(tiny_demo, tmp_path, change, message):
    from pawtf.train import train

    cfg = run_cfg(tiny_demo, "attribute-fed")
    change(cfg)
    with pytest.raises(ValueError, match=message):
        train(cfg, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_cv_refuses_a_finished_fold_with_other_settings(runs, tiny_demo, tmp_path):
    import shutil

    from pawtf.train import RunExistsError, cross_validate

    shutil.copytree(runs / "buckets", tmp_path / "cv" / "fold0")
    with pytest.raises(RunExistsError, match="fold0 holds a finished fold with other settings "
                                             r"\(model.task: 'buckets' -> 'multitask'"):
        cross_validate(run_cfg(tiny_demo, "multitask"), tmp_path / "cv", verbose=0)


def test_crop_advice_refuses_a_buckets_model(runs, tiny_demo):
    from pawtf.crop import advise_crop
    from pawtf.predict import load_scorer

    photo = sorted((tiny_demo / "train").glob("*.jpg"))[0]
    with pytest.raises(ValueError, match="a buckets model predicts classes"):
        advise_crop(load_scorer(runs / "buckets"), photo)
