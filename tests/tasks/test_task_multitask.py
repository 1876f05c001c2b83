"""The multitask task: the score and the 12 flags from the photo alone, trained, served, scored and
explained."""

import json
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pawtf import tasks
from pawtf.config import ModelConfig, RunConfig
from pawtf.data.schema import FLAGS, TARGET_COLUMN
from pawtf.models.popularity import build_head_model, build_model

from task_helpers import SIZE, cfg_for, photo_bytes


def test_multitask_model_is_image_only_with_two_heads():
    prior = np.linspace(0.05, 0.9, len(FLAGS))
    model = build_model(cfg_for("multitask"), initial_score=30.0, flag_prior=prior)
    assert [t.name for t in model.inputs] == ["image"]
    assert list(model.output_names) == ["flags", "pawpularity"]
    pred = tasks.get("multitask").as_dict(model.predict_on_batch({"image": np.zeros((2, 32, 32, 3), np.float32)}))
    assert pred["flags"].shape == (2, len(FLAGS))
    np.testing.assert_allclose(pred["flags"][0], prior, atol=0.05)  # starts at the prevalences


def test_loss_weights_put_an_mse_score_loss_on_the_flags_scale():
    stats = tasks.TaskStats(38.0, 400.0, (0.2,) * 12, (30.0, 45.0), 0)
    args = tasks.get("multitask").compile_args(ModelConfig(task="multitask", flags_loss_weight=2.0), stats)
    assert args["loss_weights"] == {"pawpularity": 1.0 / 400.0, "flags": 2.0}
    bce = tasks.get("multitask").compile_args(ModelConfig(task="multitask", loss="bce"), stats)
    assert bce["loss_weights"]["pawpularity"] == 1.0


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
    task = tasks.get("multitask")
    cfg = ModelConfig(task="multitask", embedding_units=32, head_units=32, dropout=0.1)
    keras.utils.set_random_seed(0)
    head = build_head_model(cfg, dim, stats.score_mean, stats.flag_prevalence)
    head.compile(optimizer=keras.optimizers.Adam(3e-3), **task.compile_args(cfg, stats))
    head.fit(features[:800], task.targets(train, stats), epochs=40, batch_size=32, verbose=0)
    out = task.evaluate(head.predict(features[800:], verbose=0), val, stats)
    oracle = tasks.flag_metrics(flags[800:], logits[800:])["mean_flag_auc"]  # knows the true odds: 0.93
    assert out["mean_flag_auc"] > oracle - 0.08  # 0.88 measured
    assert out["val_rmse"] < 0.4 * out["baseline_rmse"]  # 2.9 vs 13.5 measured


def test_multitask_run_reports_flag_auc_and_rmse(task_runs):
    from pawtf.runs import RunFolder

    run = RunFolder(task_runs / "multitask")
    metrics = run.metrics()
    assert metrics["task"] == "multitask"
    assert set(metrics["flag_auc"]) == set(FLAGS)
    assert 0 <= metrics["mean_flag_auc"] <= 1 and metrics["baseline_flag_auc"] == 0.5
    assert np.isfinite(metrics["val_rmse"]) and metrics["baseline_rmse"] > 5
    assert {"val_pawpularity_rmse", "val_flags_auc", "val_loss"} <= set(run.history().columns)


@pytest.mark.parametrize("task", ["multitask", "attribute-fed"])
def test_flag_models_serve_score_and_named_flags(task_exports, tiny_demo, task):
    from pawtf.export import read_info

    loaded = tf.saved_model.load(str(task_exports[task]))
    fn = loaded.signatures["serving_default"]
    assert set(fn.structured_input_signature[1]) == {"image_bytes"}  # the image alone
    out = fn(image_bytes=tf.constant(photo_bytes(tiny_demo)))
    assert out["pawpularity"].shape == (3,) and out["flags"].shape == (3, len(FLAGS))
    np.testing.assert_allclose(out["flag_subject_focus"], out["flags"][:, 0])
    np.testing.assert_allclose(out["flag_blur"], out["flags"][:, -1])
    info = read_info(task_exports[task])
    assert info["task"] == task and info["output_flags"] == list(FLAGS)


@pytest.mark.parametrize("source", ["run", "savedmodel"])
def test_predict_writes_predicted_flags_next_to_the_score(task_runs, task_exports, tiny_demo, tmp_path, source):
    from pawtf.predict import load_scorer, predict, write_scores

    scorer = load_scorer(task_runs / "multitask" if source == "run" else task_exports["multitask"])
    scores = predict(scorer, [tiny_demo / "train"], progress=False)
    write_scores(scores, tmp_path / "scores.csv")
    table = pd.read_csv(tmp_path / "scores.csv")
    assert list(table.columns) == ["path", "score", *FLAGS, "error"]
    assert len(table) == 60 and table.score.between(0, 100).all()
    assert table[list(FLAGS)].stack().between(0, 1).all()


def test_explain_targets_a_flag(task_runs, tiny_demo):
    from pawtf.explain import make_explainer, target_for
    from pawtf.runs import load_run

    run = load_run(task_runs / "multitask")
    assert list(run.task.explain_targets()) == ["score", *FLAGS]
    assert target_for(run.task, "subject_focus").output == "flags"
    assert target_for(run.task, "Eyes").unit == FLAGS.index("Eyes")
    with pytest.raises(ValueError, match="targets: score, Subject Focus"):
        target_for(run.task, "Poor")
    images = np.stack([np.asarray(tf.image.resize(tf.io.decode_jpeg(b), (SIZE, SIZE)))
                       for b in photo_bytes(tiny_demo, 2)]).astype(np.float32)
    eyes = make_explainer("gradcam", run.model, target=target_for(run.task, "Eyes"))
    score = make_explainer("gradcam", run.model, target=target_for(run.task, "score"))
    np.testing.assert_allclose(eyes.predict(images), run.model.predict_on_batch(images)["flags"][:, 1],
                               atol=1e-5)
    assert not np.allclose(eyes(images), score(images))  # different heads, different maps


def test_cli_trains_with_task_and_explains_a_flag(tiny_demo, tmp_path):
    out = tmp_path / "cli_run"
    args = [sys.executable, "-m", "pawtf", "train", "--data", str(tiny_demo), "--out", str(out),
            "--task", "multitask", "--backbone", "mobilenetv2", "--weights", "none", "--image-size", "32",
            "--epochs", "1", "--batch-size", "16", "--folds", "4", "--flags-loss-weight", "2"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    from pawtf.runs import RunFolder

    cfg = RunFolder(out).config()
    assert cfg.model.task == "multitask" and cfg.model.flags_loss_weight == 2.0
    assert json.loads(done.stdout.strip().splitlines()[-1])["task"] == "multitask"
    bad = subprocess.run([sys.executable, "-m", "pawtf", "explain", str(tiny_demo / "train"), "--model",
                          str(out), "--target", "Great", "--methods", "vanilla", "--no-scores",
                          "--out", str(tmp_path / "ex")], capture_output=True, text=True)
    assert bad.returncode != 0 and "cannot explain 'Great'; targets: score, Subject Focus" in bad.stderr


def test_unknown_task_in_a_config_is_named():
    cfg = RunConfig()
    cfg.model.task = "ranking"
    from pawtf.train import train

    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        train(cfg, "/nonexistent/never-written", verbose=0)
