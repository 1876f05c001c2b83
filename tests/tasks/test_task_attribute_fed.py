"""The attribute-fed task: stage 1 (multitask), out-of-fold predicted flags, stage 2 fed those flags,
the served model joining them; resuming and refusing stages."""

import dataclasses
import shutil

import keras
import numpy as np
import pandas as pd
import pytest

from pawtf.data.schema import FLAGS, ID_COLUMN
from pawtf.models.popularity import build_model
from pawtf.runs import PREDICTED_FLAGS, RunExistsError, RunFolder, load_run
from pawtf.train import train

from task_helpers import SIZE, cfg_for, run_cfg


def test_attribute_fed_score_head_reads_the_predicted_flags():
    model = build_model(cfg_for("attribute-fed"))
    assert [t.name for t in model.inputs] == ["image"]
    assert list(model.output_names) == ["flags", "pawpularity"]
    fed = model.get_layer("metadata_dense0").input
    assert fed._keras_history.operation.name == "flags"
    with pytest.raises(ValueError, match="use_metadata=True"):
        build_model(cfg_for("attribute-fed", use_metadata=False))


def test_attribute_fed_trains_stage_two_on_out_of_fold_flags(task_runs):
    run = RunFolder(task_runs / "attribute-fed")
    metrics = run.metrics()
    assert metrics["task"] == "attribute-fed" and metrics["oof_folds"] == 3
    assert {"stage1", "stage2"} <= set(metrics) and np.isfinite(metrics["val_rmse"])
    split = run.split()
    predicted = run.stage("stage1").read_table(PREDICTED_FLAGS)
    assert 0 <= metrics["oof_mean_flag_auc"] <= 1
    roles = predicted["role"].to_dict()
    assert all(roles[i] == ("oof" if r == "train" else "val") for i, r in zip(split[ID_COLUMN], split.role))
    assert predicted[list(FLAGS)].to_numpy().min() >= 0 and predicted[list(FLAGS)].to_numpy().max() <= 1
    # Stage 2 was trained with those predicted flags in place of the true ones, its image half frozen
    # at stage 1's weights; the served model joins stage 1's flags head to stage 2's score head.
    served, stage1, stage2 = (load_run(p).model for p in (run.path, run.path / "stage1", run.path / "stage2"))

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


def test_attribute_fed_resumes_from_its_finished_stage(task_runs, tiny_demo, tmp_path):
    """A run killed after stage 1 keeps stage 1 (and the predicted flags) when started again."""
    path = tmp_path / "fed"
    shutil.copytree(task_runs / "attribute-fed", path)
    for name in ("metrics.json", "model.keras"):
        (path / name).unlink()
    shutil.rmtree(path / "stage2")
    stage1_model = (path / "stage1" / "model.keras").stat().st_mtime_ns
    flags_before = (path / "stage1" / PREDICTED_FLAGS).read_text()
    metrics = train(run_cfg(tiny_demo, "attribute-fed"), path, verbose=0)
    assert (path / "stage1" / "model.keras").stat().st_mtime_ns == stage1_model
    assert (path / "stage1" / PREDICTED_FLAGS).read_text() == flags_before
    assert RunFolder(path / "stage2").finished and np.isfinite(metrics["val_rmse"])


def test_a_finished_stage_with_other_settings_is_refused(task_runs, tiny_demo, tmp_path):
    run = tmp_path / "fed"
    run.mkdir()
    shutil.copytree(task_runs / "buckets", run / "stage1")  # a finished run, but not this run's stage 1
    with pytest.raises(RunExistsError, match="stage1 holds a finished stage with other settings"):
        train(run_cfg(tiny_demo, "attribute-fed"), run, verbose=0)


def test_out_of_fold_flags_ignore_each_rows_own_labels(task_runs, tiny_demo):
    """Flipping the flags of one inner fold's rows changes every other row's predicted flags, and not
    theirs: a row's flags come from a head that never saw its labels."""
    from pawtf.data.split import make_folds
    from pawtf.tasks.attribute_fed import predicted_flags
    from pawtf.train import fold_data, load_table

    cfg = run_cfg(tiny_demo, "multitask")  # stage 1's settings
    data = fold_data(cfg, load_table(cfg, progress=False))
    stage1 = load_run(task_runs / "attribute-fed" / "stage1").model
    inner = make_folds(data.train, k=cfg.train.oof_folds, seed=cfg.train.seed, n_bins=cfg.data.score_bins)
    flipped = data.train.copy()
    flipped.loc[inner == 0, list(FLAGS)] = 1 - flipped.loc[inner == 0, list(FLAGS)]
    keras.utils.set_random_seed(0)
    a = predicted_flags(stage1, cfg, data, verbose=0)
    keras.utils.set_random_seed(0)
    b = predicted_flags(stage1, cfg, dataclasses.replace(data, train=flipped), verbose=0)
    held, others = data.train[ID_COLUMN][inner == 0], data.train[ID_COLUMN][inner != 0]
    np.testing.assert_allclose(a.loc[held, list(FLAGS)], b.loc[held, list(FLAGS)], atol=1e-5)
    assert np.abs(a.loc[others, list(FLAGS)].to_numpy() - b.loc[others, list(FLAGS)].to_numpy()).max() > 0.01
    np.testing.assert_allclose(a[a.role == "val"][list(FLAGS)], b[b.role == "val"][list(FLAGS)])
    assert isinstance(a, pd.DataFrame) and a.index.name == ID_COLUMN


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c.model, "use_metadata", False), "needs use_metadata=True"),
    (lambda c: setattr(c.train, "oof_folds", 1), "needs oof_folds >= 2"),
    (lambda c: setattr(c.model, "flag_balance", "oversample"), "unknown flag_balance"),
])
def test_bad_task_settings_fail_before_any_work(tiny_demo, tmp_path, change, message):
    cfg = run_cfg(tiny_demo, "attribute-fed")
    change(cfg)
    with pytest.raises(ValueError, match=message):
        train(cfg, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_attribute_fed_cannot_be_searched():
    from pawtf import tasks

    task = tasks.get("attribute-fed")
    assert task.objective is None and "search --task multitask" in task.not_searchable
