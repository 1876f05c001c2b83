"""pawtf.runs: the one owner of the run folder: create, refuse, resume, write atomically, load."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from pawtf import runs
from pawtf.config import RunConfig
from pawtf.models.popularity import build_model
from pawtf.runs import RunExistsError, RunFolder, is_run, load_run, write_atomically


def small_config() -> RunConfig:
    cfg = RunConfig()
    cfg.model.backbone, cfg.model.weights, cfg.model.image_size = "mobilenetv2", None, 32
    cfg.model.embedding_units, cfg.model.head_units = 8, 8
    return cfg


def test_create_then_load(tmp_path):
    cfg = small_config()
    run = RunFolder(tmp_path / "run").create(cfg)
    assert run.started and not run.finished and not run.has_model and not is_run(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="not a pawtf run folder: model.keras is missing"):
        load_run(run.path)
    model = build_model(cfg.model)
    run.save_model(model)
    loaded = load_run(run.path)
    assert loaded.config == cfg and loaded.metrics == {} and not loaded.finished
    assert loaded.task.name == "score" and loaded.image_size == 32 and loaded.uses_metadata
    x = {"image": np.zeros((1, 32, 32, 3), np.float32), "metadata": np.zeros((1, 12), np.float32)}
    np.testing.assert_allclose(loaded.model.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-6)
    run.write_metrics({"val_rmse": 9.5})
    assert run.finished and load_run(run.path).metrics == {"val_rmse": 9.5} and is_run(run.path)


def test_a_finished_run_and_other_settings_are_refused_before_any_write(tmp_path):
    cfg = small_config()
    run = RunFolder(tmp_path / "run").create(cfg)
    other = small_config()
    other.train.learning_rate = 0.5
    with pytest.raises(RunExistsError, match=r"unfinished run with other settings \(train.learning_rate: "
                                             r"0.001 -> 0.5\)"):
        run.check(other)
    run.create(cfg)  # the same settings resume
    machine = small_config()  # ... on another machine too: XLA, devices and precision are not the model
    machine.train.jit_compile, machine.train.strategy, machine.train.precision = True, "mirrored", "mixed_bfloat16"
    assert run.settings_diff(machine) == ""
    run.check(machine)
    run.write_metrics({"val_rmse": 1.0})
    with pytest.raises(RunExistsError, match="holds a finished run; choose another --out or pass --overwrite"):
        run.create(cfg)
    assert run.config() == cfg  # nothing written by the refusals
    run.create(other, overwrite=True)
    assert not run.finished and run.config() == other


def test_finished_metrics_reuse_a_matching_run_and_refuse_another(tmp_path):
    cfg = small_config()
    run = RunFolder(tmp_path / "fold0").create(cfg)
    assert run.finished_metrics(cfg) is None
    run.write_metrics({"val_rmse": 3.0})
    assert run.finished_metrics(cfg) == {"val_rmse": 3.0}
    other = small_config()
    other.model.task = "buckets"
    with pytest.raises(RunExistsError, match=r"fold0 holds a finished fold with other settings \(model.task: "
                                             r"'score' -> 'buckets'\); start afresh"):
        run.finished_metrics(other, "fold", "start afresh")


def test_writes_are_atomic(tmp_path):
    path = tmp_path / "values.json"
    write_atomically(path, lambda tmp: tmp.write_text("first"))

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, broken)
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["values.json"]

    run = RunFolder(tmp_path / "run").create(small_config())
    model = build_model(small_config().model)
    run.save_model(model)
    before = (run.path / "model.keras").read_bytes()

    class Unsavable(keras.Model):
        def save(self, *args, **kwargs):
            raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        run.save_model(Unsavable())
    assert (run.path / "model.keras").read_bytes() == before
    assert not [p for p in run.path.iterdir() if ".tmp" in p.name]


def test_tables_best_epoch_and_split_round_trip(tmp_path):
    run = RunFolder(tmp_path / "run").create(small_config())
    table = pd.DataFrame({"Id": ["007", "010"], "role": ["oof", "val"], "Eyes": [0.25, 0.75]})
    run.write_table(runs.PREDICTED_FLAGS, table)
    back = run.read_table(runs.PREDICTED_FLAGS)
    assert list(back.index) == ["007", "010"] and back.loc["010", "Eyes"] == 0.75  # Ids stay strings
    assert run.read_table("absent.csv") is None
    assert run.best() == {}
    run.write_best("val_rmse", 9.25, 3)
    assert run.best() == {"val_rmse": 9.25, "epoch": 3}
    run.write_split(pd.DataFrame({"Id": ["007"], "fold": [0], "role": ["val"]}))
    assert run.split()["Id"].tolist() == ["007"]
    assert run.stage("stage1").path == run.path / "stage1"


def test_cross_validation_folders(tmp_path):
    assert runs.fold_run(tmp_path, 2).path == tmp_path / "fold2"
    runs.write_cv_summary(tmp_path / "cv", {"rmse_mean": 9.0})
    assert json.loads((tmp_path / "cv" / "cv.json").read_text()) == {"rmse_mean": 9.0}
