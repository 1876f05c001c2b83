"""Where a model trains: one device, or every GPU of one machine through `tf.distribute.MirroredStrategy`.

``--strategy`` (``TrainConfig.strategy``) names it:

=============== ==========================================================================================
``auto``        ``mirrored`` when more than one GPU is visible, else ``default`` (the default setting)
``default``     TensorFlow's default strategy: one device (the GPU if there is one, else the CPU)
``mirrored``    `tf.distribute.MirroredStrategy` over every visible GPU, or over the logical CPU devices
                where there is no GPU (how the tests prove it on a CPU: one core split in two)
``multi-worker`` refused: `tf.distribute.MultiWorkerMirroredStrategy` is reported broken with Keras 3
                (keras-team/keras#20585, tensorflow/tensorflow#72388); see :data:`MULTI_WORKER_REFUSAL`
=============== ==========================================================================================

The batch size stays the *global* batch: Keras splits each batch over the replicas, so a 2-replica run
takes the same steps over the same examples as a 1-replica run, and learns the same within noise.

Example:

>>> strategy_for("default").num_replicas_in_sync
1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["MULTI_WORKER_REFUSAL", "STRATEGIES", "check_strategy", "strategy_for"]

STRATEGIES = ("auto", "default", "mirrored", "multi-worker")

MULTI_WORKER_REFUSAL = (
    "--strategy multi-worker is refused: tf.distribute.MultiWorkerMirroredStrategy is broken with Keras 3 "
    "(keras-team/keras#20585, tensorflow/tensorflow#72388; tried with two localhost workers, TF_CONFIG, CPU: "
    "model.fit fails with \"ValueError: Attempt to convert a value (PerReplica:{...}) with an unsupported "
    "type (<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor\"). On one machine with several GPUs use "
    "--strategy mirrored; across machines run the search with one KerasTuner worker per machine "
    "(python -m tuning.search --help: chief/worker mode) or train one fold per machine "
    "(pawtf train --fold K). benchmarks/multi_worker.py checks again whether it works")


def check_strategy(name: str) -> None:
    """Refuse an unknown strategy, or ``multi-worker``, before any work (no TensorFlow needed).

    Raises:
        ValueError: saying what to use instead.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown --strategy {name!r}; expected one of: {', '.join(STRATEGIES)}")
    if name == "multi-worker":
        raise ValueError(MULTI_WORKER_REFUSAL)


def strategy_for(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute.Strategy` called `name` (see the module's table).

    Raises:
        ValueError: an unknown name, or ``multi-worker``.
    """
    import tensorflow as tf

    check_strategy(name)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)
