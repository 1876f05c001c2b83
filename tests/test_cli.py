import json
from pathlib import Path

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


def test_options_are_never_abbreviated_and_typos_get_a_suggestion(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--out", "x", "--epoch", "3"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --epoch 3" in err and "did you mean --epochs?" in err
    parser = build_parser()
    assert parser.parse_args(["train", "--out", "x", "--epochs", "3"]).epochs == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "p.jpg", "--model", "m", "--meta", "x.csv"])  # not --metadata


def test_help_says_what_there_is(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "python -m tuning.search" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["cv", "--help"])
    out = capsys.readouterr().out
    assert "--folds" in out and "--fold " not in out and "--fold\n" not in out  # cv trains every fold


def test_too_few_rows_for_the_folds_is_a_clear_error(tmp_path, capsys):
    from PIL import Image

    from pawtf.data.schema import FLAGS

    (tmp_path / "train").mkdir()
    (tmp_path / "train.csv").write_text("Id," + ",".join(FLAGS) + ",Pawpularity\nabc," + ",".join("0" * 12)
                                        + ",30\n")
    Image.new("RGB", (32, 32)).save(tmp_path / "train" / "abc.jpg")
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--weights", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot make 5 folds from 1 row" in err and "Traceback" not in err
    assert main(["baseline", "--csv", str(tmp_path / "train.csv")]) == 2
    assert "cannot make 5 folds from 1 row" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_skip_bad_is_advised_where_it_exists_and_its_report_is_printed(tmp_path, capsys):
    from pawtf.data.schema import FLAGS

    rows = [f"r{i}," + ",".join(str((i + j) % 2) for j in range(12)) + f",{10 + i}" for i in range(30)]
    csv = tmp_path / "t.csv"
    csv.write_text("Id," + ",".join(FLAGS) + ",Pawpularity\n" + "\n".join(rows) + "\nbad," + "0," * 11 + "7,50\n")
    assert main(["baseline", "--csv", str(csv), "--folds", "3"]) == 2
    assert "Blur 7 is not 0 or 1" in (err := capsys.readouterr().err) and "--skip-bad" in err
    assert main(["baseline", "--csv", str(csv), "--folds", "3", "--skip-bad"]) == 0
    assert "dropped 1 of 31 rows" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["", "train", "cv", "predict", "rank", "crop", "explain", "export",
                                     "baseline", "analyze-metadata", "demo-data", "app", "sensitivity", "distill"])
def test_help_needs_neither_tensorflow_nor_pandas(command):
    """`pawtf --help` and `pawtf CMD --help` answer at once: building their parser loads no TensorFlow,
    Keras or pandas (measured: about 0.1 s on an idle 2-core machine, against ~20 s when they loaded)."""
    import subprocess
    import sys

    code = ("import sys\nfrom pawtf.cli import build_parser\n"
            f"build_parser({command!r}).format_help()\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"{command or 'pawtf'} --help loads {done.stdout.strip()}"


def test_the_search_help_needs_no_tensorflow():
    import subprocess
    import sys

    code = "import sys\nfrom tuning.search import build_parser\nbuild_parser().format_help()\n" \
           "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_no_tensorflow_start_up_chatter_on_a_cpu(tmp_path):
    import subprocess
    import sys

    from pawtf.data.schema import FLAGS

    rows = [f"r{i}," + ",".join(str((i + j) % 2) for j in range(12)) + f",{10 + i}" for i in range(30)]
    (tmp_path / "t.csv").write_text("Id," + ",".join(FLAGS) + ",Pawpularity\n" + "\n".join(rows) + "\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "pawtf", "baseline", "--csv", str(tmp_path / "t.csv"),
                           "--folds", "3"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    for chatter in ("oneDNN", "absl::InitializeLog", "cpu_feature_guard", "This TensorFlow binary"):
        assert chatter not in done.stderr, done.stderr
    # TensorFlow looks for CUDA on its first device query ("failed call to cuInit" where there is none)
    code = ("from pawtf.native_log import import_tensorflow; tf = import_tensorflow(); "
            "print(float(tf.constant(1.0) + 1))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "2.0", done.stderr[-2000:]
    if not any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")):
        assert not [line for line in done.stderr.splitlines() if line.startswith(("E0000", "I0000", "W0000"))], \
            done.stderr
