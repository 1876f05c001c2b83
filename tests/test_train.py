import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pawtf.config import RunConfig
from pawtf.runs import RunFolder, load_run
from pawtf.train import RunExistsError, train


def tiny_config(data_dir, **train_kw) -> RunConfig:
    cfg = RunConfig()
    cfg.data.data_dir = str(data_dir)
    cfg.data.folds = 4
    cfg.model.backbone, cfg.model.weights, cfg.model.image_size = "mobilenetv2", None, 32
    cfg.model.embedding_units, cfg.model.head_units = 16, 16
    cfg.train.batch_size = 16
    for k, v in train_kw.items():
        setattr(cfg.train, k, v)
    return cfg


def test_tiny_end_to_end(tiny_demo, tmp_path):
    cfg = tiny_config(tiny_demo, epochs=2)
    metrics = train(cfg, tmp_path / "run", verbose=0)
    for key in ("val_rmse", "baseline_rmse", "n_train", "n_val", "epochs_run"):
        assert key in metrics
    assert metrics["n_train"] + metrics["n_val"] == 60
    assert metrics["n_train_oversampled"] > metrics["n_train"]
    assert metrics["epochs_run"] == 2
    assert np.isfinite(metrics["val_rmse"]) and metrics["baseline_rmse"] > 5
    run = load_run(tmp_path / "run")
    assert run.config == cfg and run.image_size == 32 and run.uses_metadata
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    assert (split.role == "val").sum() == metrics["n_val"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics
    assert list((tmp_path / "run" / "logs").rglob("*tfevents*"))
    assert not (tmp_path / "run" / "backup").exists()  # removed once training finished
    with pytest.raises(RunExistsError, match="finished run"):
        train(cfg, tmp_path / "run", verbose=0)


def test_image_levels_beyond_pooled_train_and_reload(tiny_demo, tmp_path):
    cfg = tiny_config(tiny_demo, epochs=1)
    cfg.model.image_levels = "pooled,technical"
    metrics = train(cfg, tmp_path / "run", verbose=0)
    assert np.isfinite(metrics["val_rmse"])
    scale = load_run(tmp_path / "run").model.get_layer("image_pool")
    assert scale.input.shape[-1] == 1280 + 9  # MobileNetV2's pooled features and the technical measures
    brightness = 1280 + 1  # the training photos' mean brightness, a share of white
    assert 0.05 < float(np.asarray(scale.mean).reshape(-1)[brightness]) < 0.95


def test_other_settings_are_not_mixed_into_an_unfinished_run(tiny_demo, tmp_path):
    cfg = tiny_config(tiny_demo)
    RunFolder(tmp_path / "run").create(cfg)
    cfg.train.learning_rate = 0.5
    with pytest.raises(RunExistsError, match="learning_rate"):
        train(cfg, tmp_path / "run", verbose=0)


def test_nothing_is_written_before_the_data_passed_its_checks(tiny_demo, tmp_path):
    """A command refused for its data leaves no run behind to refuse the corrected command."""
    from pawtf.data.schema import DataError

    bad = tmp_path / "bad"
    (bad / "train").mkdir(parents=True)
    (bad / "train.csv").write_text("Id,Pawpularity\nabc,130\n")
    with pytest.raises(DataError):
        train(tiny_config(bad), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()
    metrics = train(tiny_config(tiny_demo, epochs=1), tmp_path / "run", verbose=0)
    assert metrics["epochs_run"] == 1


def test_recipe_parts_are_shared(tiny_demo):
    """compile_model and schedule_callbacks are what both training and the search use."""
    import keras

    from pawtf import tasks
    from pawtf.models.popularity import build_model
    from pawtf.train import compile_model, schedule_callbacks

    cfg = tiny_config(tiny_demo)
    stats = tasks.TaskStats(38.0, 400.0, (0.5,) * 12, (30.0, 45.0), 0)
    model = compile_model(build_model(cfg.model), cfg, stats)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert float(model.optimizer.learning_rate) == pytest.approx(cfg.train.learning_rate)
    plateau, stop = schedule_callbacks(cfg.train, "val_bucket_accuracy", "max")
    assert plateau.monitor == stop.monitor == "val_bucket_accuracy"
    assert stop.patience == cfg.train.early_stopping_patience and stop.restore_best_weights


KILL_SCRIPT = """
import os, signal, sys, keras
sys.path.insert(0, {tests!r})
from test_train import tiny_config
from pawtf.train import train

class KillAfter(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

train(tiny_config({data!r}, epochs=4), {out!r}, verbose=0, callbacks=[KillAfter()])
"""


def test_killed_run_resumes_from_its_last_epoch(tiny_demo, tmp_path):
    out = tmp_path / "run"
    script = KILL_SCRIPT.format(tests=str(__import__("pathlib").Path(__file__).parent),
                                data=str(tiny_demo), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "backup").exists() and not (out / "metrics.json").exists()
    assert list(pd.read_csv(out / "history.csv").epoch) == [0, 1]

    metrics = train(tiny_config(tiny_demo, epochs=4), out, verbose=0)
    epochs = list(pd.read_csv(out / "history.csv").epoch)
    assert epochs == [0, 1, 2, 3], "resumed at epoch 2, not from scratch"
    assert metrics["epochs_run"] == 4


def test_a_backup_cut_short_by_a_kill_falls_back_to_the_epoch_before(tiny_demo, tmp_path):
    """A kill while Keras writes an epoch's backup leaves a broken weights file: the run resumes from
    the previous epoch's backup (Keras's double checkpoint) instead of failing at every restart."""
    out = tmp_path / "run"
    script = KILL_SCRIPT.format(tests=str(__import__("pathlib").Path(__file__).parent),
                                data=str(tiny_demo), out=str(out))
    assert subprocess.run([sys.executable, "-c", script], capture_output=True).returncode == -9
    latest = out / "backup" / "latest.weights.h5"
    latest.write_bytes(latest.read_bytes()[:1000])  # what a kill half-way through writing leaves
    metrics = train(tiny_config(tiny_demo, epochs=4), out, verbose=0)
    assert list(pd.read_csv(out / "history.csv").epoch) == [0, 1, 2, 3] and metrics["epochs_run"] == 4


def test_a_first_backup_cut_short_restarts_the_fit_instead_of_failing(tiny_demo, tmp_path, caplog):
    """The first epoch's backup has no earlier copy: a kill while it is written restarts the fit."""
    cfg = tiny_config(tiny_demo, epochs=2)
    out = tmp_path / "run"
    RunFolder(out).create(cfg)
    (out / "backup").mkdir()
    (out / "backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 500)  # cut short
    (out / "history.csv").write_text("epoch,learning_rate,loss,rmse,val_loss,val_rmse\n"
                                     "0,0.001,500.0,22.4,300.0,17.3\n")  # written before the kill
    metrics = train(cfg, out, verbose=0)
    assert metrics["epochs_run"] == 2 and list(pd.read_csv(out / "history.csv").epoch) == [0, 1]
    assert "cut short by a kill" in caplog.text


KILL_AT = {
    # after the last epoch, before the run is evaluated and its metrics written
    "end": "class Kill(keras.callbacks.Callback):\n"
           "    def on_train_end(self, logs=None):\n"
           "        os.kill(os.getpid(), signal.SIGKILL)\n"
           "callbacks = [Kill()]\n",
    # half-way through writing the best model of epoch 1 (a temporary file is left, the backup is epoch 0's)
    "save": "from pawtf import runs, train as T\n"
            "real_on_epoch_end = T.SaveBest.on_epoch_end\n"
            "def on_epoch_end(self, epoch, logs=None):\n"
            "    if epoch == 1:\n"
            "        self.best = float('inf')  # make this epoch the best, so it is saved\n"
            "        def dying_write(path, write):\n"
            "            open(str(path) + '.tmp', 'wb').write(b'half a model')\n"
            "            os.kill(os.getpid(), signal.SIGKILL)\n"
            "        runs.write_atomically = dying_write\n"
            "    real_on_epoch_end(self, epoch, logs)\n"
            "T.SaveBest.on_epoch_end = on_epoch_end\n"
            "callbacks = []\n",
}


@pytest.mark.parametrize("moment", ["end", "save"])
def test_a_kill_at_any_moment_never_redoes_finished_work(tiny_demo, tmp_path, moment):
    out = tmp_path / "run"
    script = ("import os, signal, sys, keras\n"
              f"sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})\n"
              "from test_train import tiny_config\n"
              "from pawtf.train import train\n"
              + KILL_AT[moment]
              + f"train(tiny_config({str(tiny_demo)!r}, epochs=3), {str(out)!r}, "
                "verbose=0, callbacks=callbacks)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (out / "metrics.json").exists()
    before = list(pd.read_csv(out / "history.csv").epoch)
    metrics = train(tiny_config(tiny_demo, epochs=3), out, verbose=0)
    epochs = list(pd.read_csv(out / "history.csv").epoch)
    assert epochs == [0, 1, 2], f"each epoch once (history before the restart: {before})"
    assert metrics["epochs_run"] == 3 and (out / "model.keras").is_file()
    if moment == "end":
        assert before == [0, 1, 2], "every epoch had finished before the kill"
    else:
        assert before == [0], "killed while saving epoch 1's model: its row was not written yet"
    assert not (out / "backup").exists()
