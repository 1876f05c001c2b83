"""pawtf distill: a small student learns a teacher's outputs on (possibly unlabelled) photos; the teacher
scores each photo once (kept for a resume), the held-out photos give the figures."""

import json

import numpy as np
import pandas as pd
import pytest

from pawtf.distill import TEACHER_FILE, _held_out, photo_table


def test_the_held_out_photos_depend_on_the_file_name_only(tmp_path):
    names = [f"p{i}.jpg" for i in range(400)]
    here = _held_out([f"/a/{n}" for n in names], 0.2)
    assert (here == _held_out([f"/b/c/{n}" for n in names], 0.2)).all()
    assert 0.12 < here.mean() < 0.28


def test_photos_come_from_folders_and_data_folders(tiny_demo, tmp_path):
    rows = photo_table([tiny_demo], progress=False)
    assert len(rows) == 60 and "Pawpularity" in rows  # a data folder: its table, labels included
    plain = photo_table([tiny_demo / "train"], progress=False)
    assert len(plain) == 60 and list(plain.columns) == ["path"]
    with pytest.raises(ValueError, match="no photos found"):
        photo_table([tmp_path], progress=False)


def test_a_student_learns_the_teacher_and_resumes_without_rescoring(make_run, tiny_demo, tmp_path, capsys):
    from pawtf.cli import main
    from pawtf.runs import RunFolder

    teacher = make_run(tmp_path / "teacher", False, 3)
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(teacher), "--data", str(tiny_demo), "--out", str(out), "--image-size",
            "64", "--epochs", "2", "--batch-size", "16", "--quiet"]
    main(args)
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["task"] == "score" and metrics["teacher_task"] == "score"
    assert metrics["n_train"] + metrics["n_val"] == 60 and metrics["n_val"] >= 2
    assert -1 <= metrics["spearman_to_teacher"] <= 1 and metrics["mean_abs_difference"] >= 0
    assert "val_rmse" in metrics and "teacher_val_rmse" in metrics  # the data folder's scores
    assert metrics["trained_on"]["synthetic_demo"] is False  # the teacher (a built run) did not say demo
    kept = pd.read_csv(out / TEACHER_FILE)
    assert len(kept) == 60 and np.isfinite(kept["teacher"]).all()
    run = RunFolder(out)
    assert (run.config().model.backbone, run.config().model.image_size) == ("efficientnet_lite0", 64)
    assert run.config().model.image_levels == "multilevel,technical"  # the student sees every block
    scale = run.load_model().get_layer("image_pool")  # standardised by the photos it learnt from
    assert np.abs(np.asarray(scale.mean)).max() > 0 and not np.allclose(scale.variance, 1)
    # a kill after the teacher scored: the same command reuses its outputs and fits
    (out / "metrics.json").unlink()
    (out / "fitted.json").unlink()
    stamp = (out / TEACHER_FILE).stat().st_mtime_ns
    main(args)
    assert (out / TEACHER_FILE).stat().st_mtime_ns == stamp
    assert run.finished


def test_a_bad_setting_is_a_clear_error(make_run, tiny_demo, tmp_path):
    from pawtf.distill import distill

    with pytest.raises(ValueError, match="--val-share 1"):
        distill(tmp_path / "nothing", [tiny_demo], tmp_path / "s", val_share=1.0)
