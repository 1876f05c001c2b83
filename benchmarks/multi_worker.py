"""Does `tf.distribute.MultiWorkerMirroredStrategy` train a Keras 3 model? Two localhost workers, on CPU.

    python benchmarks/multi_worker.py [--port 23456]

Starts two worker processes with TF_CONFIG pointing at each other, each fitting a small Keras model under
the strategy (with BackupAndRestore, as pawtf trains), and prints each worker's last lines and the
verdict. pawtf refuses ``--strategy multi-worker`` because this failed (TensorFlow 2.21, Keras 3.15:
``ValueError: Attempt to convert a value (PerReplica:{...}) ... to a Tensor``, keras-team/keras#20585);
when the last line reads ``multi_worker_works=1``, that refusal can go.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

WORKER = r"""
import json, os, sys
import numpy as np, tensorflow as tf, keras
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, x.sum(1, keepdims=True))).batch(32)
history = model.fit(ds, epochs=2, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(sys.argv[1])])
print("replicas", strategy.num_replicas_in_sync, "loss", [round(v, 3) for v in history.history["loss"]])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=23456, help="first of two free ports (default: %(default)s)")
    args = parser.parse_args()
    cluster = {"worker": [f"localhost:{args.port}", f"localhost:{args.port + 1}"]}
    tmp = tempfile.mkdtemp(prefix="pawtf-multi-worker-")
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                   TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, f"{tmp}/backup{index}"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    codes = []
    for index, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=300)
        lines = [line for line in out.splitlines() if line.strip()]
        error = next((line for line in lines if line.startswith(("ValueError", "TypeError", "RuntimeError"))), None)
        print(f"worker {index}: exit {proc.returncode}; " + (error[:300] if error else lines[-1] if lines else ""))
        codes.append(proc.returncode)
    print(f"multi_worker_works={int(all(code == 0 for code in codes))}")


if __name__ == "__main__":
    main()
