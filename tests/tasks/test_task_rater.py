"""The rater task: good photo or retake, labelled by a Good column or the score above an edge, classes
weighed to balance, the decision threshold chosen on the training rows and folded into the model;
trained, served, scored and ranked."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.metrics import balanced_accuracy_score

from pawtf import tasks
from pawtf.data.schema import GOOD_COLUMN, TARGET_COLUMN, DataError, read_table
from pawtf.models.popularity import build_model
from pawtf.runs import RunFolder
from pawtf.tasks.rater import GOOD_LOGIT, best_threshold, fold_threshold

from task_helpers import cfg_for, photo_bytes, run_cfg


def test_labels_come_from_the_good_column_or_the_edge():
    rows = pd.DataFrame({TARGET_COLUMN: [10.0, 20, 30, 40, 50, 60]})
    stats = tasks.TaskStats.from_rows(rows)
    assert stats.good_edge == tasks.bucket_edges(rows[TARGET_COLUMN])[1]
    assert stats.good_labels(rows).tolist() == [0, 0, 0, 0, 1, 1] and stats.good_rate == pytest.approx(1 / 3)
    assert tasks.TaskStats.from_rows(rows, good_above=25).good_labels(rows).tolist() == [0, 0, 1, 1, 1, 1]
    labelled = rows.assign(**{GOOD_COLUMN: [1, 0, 0, 0, 0, 0]})
    stats = tasks.TaskStats.from_rows(labelled)
    assert stats.good_labels(labelled).tolist() == [1, 0, 0, 0, 0, 0] and stats.good_rate == pytest.approx(1 / 6)
    good, retake = stats.good_weights()  # balanced: each class carries half the weight
    assert good * 1 == pytest.approx(retake * 5)


def test_a_good_column_is_read_and_checked(tmp_path):
    from pawtf.data.schema import FLAGS

    header = ["Id", *FLAGS, TARGET_COLUMN, GOOD_COLUMN]
    good = tmp_path / "good.csv"
    good.write_text(",".join(header) + "\n" + "a," + "0," * 12 + "50,1\nb," + "0," * 12 + "30,0\n")
    table, _ = read_table(good)
    assert table[GOOD_COLUMN].tolist() == [1, 0]
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(header) + "\n" + "a," + "0," * 12 + "50,2\n")
    with pytest.raises(DataError, match=r"line 2.*Good 2 is not 0 \(retake\) or 1 \(good\)"):
        read_table(bad)


def test_the_threshold_is_the_best_balanced_accuracy():
    rng = np.random.default_rng(0)
    labels = (rng.random(300) < 0.2).astype(int)  # unbalanced, as the study's data
    p = np.clip(0.3 * labels + rng.normal(0.2, 0.15, 300), 0, 1)
    t = best_threshold(labels, p)
    best = max(balanced_accuracy_score(labels, p >= c) for c in np.unique(p))
    assert balanced_accuracy_score(labels, p >= t) == pytest.approx(best)
    assert balanced_accuracy_score(labels, p >= 0.5) < best  # 0.5 would have been worse here
    assert best_threshold([1, 1], [0.2, 0.3]) == 0.5


def test_folding_the_threshold_moves_the_decision_to_one_half_and_keeps_the_order():
    model = build_model(cfg_for("rater"))
    assert [t.name for t in model.inputs] == ["image"]  # the photo alone
    images = np.random.default_rng(1).uniform(0, 255, (6, 32, 32, 3)).astype(np.float32)
    before = model.predict_on_batch(images).ravel()
    bias = float(model.get_layer(GOOD_LOGIT).get_weights()[1][0])
    t = float(np.sort(before)[2])
    fold_threshold(model, t, bias)
    fold_threshold(model, t, bias)  # idempotent: a resumed run folds the same threshold again
    after = model.predict_on_batch(images).ravel()
    assert after[np.argsort(before)[2]] == pytest.approx(0.5, abs=1e-5)
    np.testing.assert_array_equal(np.argsort(after), np.argsort(before))
    np.testing.assert_array_equal(after >= 0.5 - 1e-6, before >= t - 1e-6)


@pytest.fixture(scope="module")
def rater_run(tiny_demo, tmp_path_factory):
    from pawtf.train import train

    out = tmp_path_factory.mktemp("rater") / "run"
    cfg = run_cfg(tiny_demo, "rater")
    cfg.train.epochs = 2
    train(cfg, out, verbose=0)
    return out


def test_a_rater_run_reports_figures_beside_the_majority_class(rater_run, tiny_demo):
    from pawtf.train import fold_data, load_table, predict_rows

    run = RunFolder(rater_run)
    metrics = run.metrics()
    for key in ("good_accuracy", "good_balanced_accuracy", "good_auc", "baseline_good_accuracy"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["baseline_good_balanced_accuracy"] == 0.5
    assert np.sum(metrics["good_confusion"]) == metrics["n_val"]
    table = pd.read_csv(tiny_demo / "train.csv")
    split = run.split()
    train_scores = table[table["Id"].isin(split[split.role == "train"]["Id"])][TARGET_COLUMN]
    assert metrics["good_edge"] == tasks.bucket_edges(train_scores)[1]
    # the threshold was chosen on the training rows and folded in: there, 0.5 is now the best cut
    cfg = run.config()
    data = fold_data(cfg, load_table(cfg, progress=False))
    p = predict_rows(run.load_model(), cfg, data.train)["good"]
    labels = tasks.TaskStats.from_rows(data.train).good_labels(data.train)
    assert best_threshold(labels, p) == pytest.approx(0.5, abs=1e-4)
    assert run.fitted()["good_threshold"] == metrics["good_threshold"]
    assert "good/retake accuracy" in tasks.get("rater").headline(metrics)


def test_a_rater_serves_probability_and_verdict_and_predict_shows_them(rater_run, tiny_demo, tmp_path):
    from pawtf.export import export, read_info
    from pawtf.predict import load_scorer, predict, rank
    from pawtf.runs import load_run

    version = export(load_run(rater_run), tmp_path / "rater")
    fn = tf.saved_model.load(str(version)).signatures["serving_default"]
    out = fn(image_bytes=tf.constant(photo_bytes(tiny_demo)))
    p = out["good"].numpy()
    assert [v.decode() for v in out["verdict"].numpy()] == ["good" if v >= 0.5 else "retake" for v in p]
    assert read_info(version)["good_threshold"] == json.loads((rater_run / "metrics.json").read_text())[
        "good_threshold"]
    a = predict(load_scorer(rater_run), [tiny_demo / "train"], progress=False)
    b = predict(load_scorer(version), [tiny_demo / "train"], progress=False)
    assert all(s.score is None and s.extra["verdict"] in ("good", "retake") for s in a)
    assert max(abs(x.extra["p_good"] - y.extra["p_good"]) for x, y in zip(a, b)) < 0.02
    assert a[0].label.split()[0] == a[0].extra["verdict"]
    ranked = rank(load_scorer(rater_run), [tiny_demo / "train"], progress=False)
    assert [s.rank_value for s in ranked] == sorted((s.rank_value for s in ranked), reverse=True)


def test_a_rater_distils_into_a_student_that_keeps_its_decision(rater_run, tiny_demo, tmp_path):
    from pawtf.distill import distill
    from pawtf.runs import load_run

    metrics = distill(rater_run, [tiny_demo], tmp_path / "student", image_size=48, epochs=1, batch_size=16,
                      verbose=0, progress=False)
    assert metrics["task"] == metrics["teacher_task"] == "rater"
    assert 0 <= metrics["agreement"] <= 1 and metrics["mean_abs_difference"] < 1
    teacher = json.loads((rater_run / "metrics.json").read_text())
    assert metrics["good_edge"] == teacher["good_edge"]  # the labels are the teacher's
    assert "good_auc" in metrics and "teacher_good_auc" in metrics
    assert load_run(tmp_path / "student").task.name == "rater"


def test_the_command_line_takes_the_rater_and_its_edge(tmp_path):
    from pawtf.cli import build_parser
    from pawtf.cli.training import run_config as config_from_args

    args = build_parser("train").parse_args(["train", "--out", str(tmp_path / "r"), "--task", "rater",
                                             "--good-above", "60"])
    cfg = config_from_args(args)
    assert (cfg.model.task, cfg.model.good_above) == ("rater", 60.0)
    args = build_parser("train").parse_args(["train", "--out", str(tmp_path / "r"), "--task", "rater",
                                             "--good-above", "100"])
    with pytest.raises(SystemExit, match="--good-above 100"):
        config_from_args(args)


def test_photos_labelled_by_folders_train_a_rater_and_nothing_else(tiny_demo, tmp_path):
    import shutil

    from pawtf.data.folder import load_folder
    from pawtf.train import train

    photos = sorted((tiny_demo / "train").glob("*.jpg"))
    root = tmp_path / "labelled"
    for folder, chosen in (("good", photos[:12]), ("bad", photos[12:40])):
        (root / folder / "sub").mkdir(parents=True)
        for p in chosen:
            shutil.copy(p, root / folder / "sub" / p.name)  # nested folders are searched too
    (root / "bad" / "broken.jpg").write_bytes(b"not a photo")
    with pytest.raises(DataError, match="broken.jpg"):
        load_folder(root, progress=False)
    table, problems = load_folder(root, skip_bad=True, progress=False)
    assert len(table) == 40 and len(problems) == 1
    assert table[GOOD_COLUMN].sum() == 12 and table["Id"].str.startswith("good-").sum() == 12
    cfg = run_cfg(root, "score")
    cfg.data.skip_bad = True
    with pytest.raises(ValueError, match="labels its photos good/bad by folder.*--task rater only"):
        train(cfg, tmp_path / "score", verbose=0)
    cfg = run_cfg(root, "rater")
    cfg.data.skip_bad = True
    metrics = train(cfg, tmp_path / "rater", verbose=0)
    assert metrics["good_rate_val"] is not None and np.sum(metrics["good_confusion"]) == metrics["n_val"]
    saved = RunFolder(tmp_path / "rater").config()
    assert saved.data.oversample == []  # no blurred copies for a rater
    assert metrics["n_train_oversampled"] == metrics["n_train"]
