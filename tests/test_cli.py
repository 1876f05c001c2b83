import json

import pytest

from pawtf.cli import build_parser, main


def test_bad_values_fail_before_any_work(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--out", "x", "--backbone", "densenet161"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--out", "x", "--weights", "/no/such/file.h5"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--out", "x", "--epochs", "0"])


def test_data_errors_are_reported_not_raised(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    (tmp_path / "train.csv").write_text("Id,Pawpularity\nabc,130\n")
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--weights", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "train.csv" in err and "missing" in err.lower()


def test_demo_data_and_baseline(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path / "d"), "--n", "80", "--size", "32"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n"] == 80
    assert main(["baseline", "--csv", str(tmp_path / "d" / "train.csv"), "--folds", "3"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    best = json.loads(last)
    assert {"rmse_mean", "rmse_std", "model"} <= set(best)
    assert best["rmse_mean"] < info["score_std"]  # the demo's flags carry signal


def test_cv_trains_every_fold(tiny_demo, tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["cv", "--data", str(tiny_demo), "--out", str(out), "--folds", "2", "--epochs", "1",
            "--backbone", "mobilenetv2", "--weights", "none", "--image-size", "32"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(summary["folds"]) == 2 and summary["rmse_std"] >= 0
    assert (out / "fold0" / "model.keras").exists() and (out / "fold1" / "model.keras").exists()
    assert main(args) == 0  # finished folds are reused, not retrained
