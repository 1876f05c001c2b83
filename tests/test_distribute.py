"""`--strategy mirrored`: a 2-replica MirroredStrategy run on one CPU split into two logical devices (as
Keras tests it) learns what the 1-replica run learns, takes the same steps over the same global batch,
and resumes after a kill through BackupAndRestore.

Each run is a fresh Python process: logical devices can only be set before TensorFlow starts.
"""

import json
import subprocess
import sys

import pandas as pd
import pytest

from pawtf.distribute import MULTI_WORKER_REFUSAL, check_strategy

SCRIPT = r"""
import json, logging, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from pawtf.config import RunConfig
from pawtf.train import train

data, out, strategy, kill_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
logging.basicConfig(level=logging.INFO, format="%(message)s")
cfg = RunConfig()
cfg.data.data_dir, cfg.data.oversample = data, []
cfg.model.image_size, cfg.train.epochs, cfg.train.batch_size, cfg.train.strategy = 32, 2, 16, strategy
cfg.train.early_stopping_patience = 10


class Kill(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == kill_after:
            raise SystemExit(3)


steps = []
class Steps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        steps.append(batch)


metrics = train(cfg, out, verbose=0, callbacks=[Kill(), Steps()])
print(json.dumps({"val_rmse": metrics["val_rmse"], "steps": len(steps),
                  "replicas": tf.distribute.get_strategy().num_replicas_in_sync}))
"""


def run(tiny_demo, out, strategy, kill_after=0):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_demo), str(out), strategy, str(kill_after)],
                          capture_output=True, text=True, timeout=900)
    return done


def test_two_replicas_learn_what_one_learns_and_resume(tiny_demo, tmp_path):
    one = run(tiny_demo, tmp_path / "one", "default")
    assert one.returncode == 0, one.stderr[-2000:]
    two = run(tiny_demo, tmp_path / "two", "mirrored")
    assert two.returncode == 0, two.stderr[-2000:]
    assert "training on 2 replicas (MirroredStrategy), 8 photos a batch each" in two.stderr
    a, b = json.loads(one.stdout.splitlines()[-1]), json.loads(two.stdout.splitlines()[-1])
    assert a["steps"] == b["steps"] == 3 * 2  # 48 training photos, global batch 16, 2 epochs
    assert b["val_rmse"] == pytest.approx(a["val_rmse"], rel=0.05)  # within noise

    killed = run(tiny_demo, tmp_path / "killed", "mirrored", kill_after=1)
    assert killed.returncode == 3
    resumed = run(tiny_demo, tmp_path / "killed", "mirrored")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.splitlines()[-1])["steps"] == 3  # only the second epoch ran again
    history = pd.read_csv(tmp_path / "killed" / "history.csv")
    assert list(history["epoch"]) == [0, 1]


def test_multi_worker_is_refused_with_what_to_use():
    with pytest.raises(ValueError, match="keras-team/keras#20585"):
        check_strategy("multi-worker")
    assert "--strategy mirrored" in MULTI_WORKER_REFUSAL
    with pytest.raises(ValueError, match="unknown --strategy 'tpu'"):
        check_strategy("tpu")


def test_mixed_precision_keeps_outputs_float32_and_does_not_leak(tiny_demo, tmp_path):
    """--precision mixed_bfloat16 (what auto picks on an A100/H100; slow but correct on a CPU): the
    backbone computes in bfloat16, the outputs in float32, the run predicts finite scores, and the next
    model of the process is float32 again."""
    import keras
    import numpy as np

    from pawtf.config import RunConfig
    from pawtf.distribute import resolve_precision, resolve_xla
    from pawtf.runs import load_run
    from pawtf.train import train

    cfg = RunConfig()
    cfg.data.data_dir, cfg.data.oversample = str(tiny_demo), []
    cfg.model.image_size, cfg.train.epochs, cfg.train.precision = 48, 1, "mixed_bfloat16"
    metrics = train(cfg, tmp_path / "run", verbose=0)
    assert np.isfinite(metrics["val_rmse"])
    assert keras.config.dtype_policy().name == "float32"
    model = load_run(tmp_path / "run").model
    assert model.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert model.get_layer("pawpularity").compute_dtype == "float32"
    assert model.outputs[0].dtype == "float32"
    assert resolve_precision("auto") == "float32" and resolve_xla(None) is False  # this CPU
    with pytest.raises(ValueError, match="unknown --precision 'half'"):
        check_strategy("auto", "half")
