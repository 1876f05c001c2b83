"""Where and how a model trains: the devices (one, or every GPU of one machine through
`tf.distribute.MirroredStrategy`), the numeric precision and XLA, with defaults that follow the hardware.

``--strategy`` (``TrainConfig.strategy``) names the devices:

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

``--precision`` (``TrainConfig.precision``): ``auto`` is ``mixed_bfloat16`` on a GPU of compute capability
8.0 or more (A100, H100: no loss scaling needed), ``mixed_float16`` on older GPUs with tensor cores (7.x;
Keras wraps the optimizer in a loss scaler), and ``float32`` on a CPU, where both mixed policies are
slower (measured on this project's 2-core CPU). The outputs' last layers stay float32 in every policy.
``--xla`` (``TrainConfig.jit_compile``): ``auto`` (None) compiles with XLA on a GPU, not on a CPU (about
10x slower on a small CPU).

Example:

>>> strategy_for("default").num_replicas_in_sync
1
>>> resolve_precision("float32"), resolve_xla(False)
('float32', False)
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["MULTI_WORKER_REFUSAL", "PRECISIONS", "STRATEGIES", "check_strategy", "precision_policy",
           "resolve_precision", "resolve_xla", "strategy_for"]

STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")

MULTI_WORKER_REFUSAL = (
    "--strategy multi-worker is refused: tf.distribute.MultiWorkerMirroredStrategy is broken with Keras 3 "
    "(keras-team/keras#20585, tensorflow/tensorflow#72388; tried with two localhost workers, TF_CONFIG, CPU: "
    "model.fit fails with \"ValueError: Attempt to convert a value (PerReplica:{...}) with an unsupported "
    "type (<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor\"). On one machine with several GPUs use "
    "--strategy mirrored; across machines run the search with one KerasTuner worker per machine "
    "(python -m tuning.search --help: chief/worker mode) or train one fold per machine "
    "(pawtf train --fold K). benchmarks/multi_worker.py checks again whether it works")


def check_strategy(name: str, precision: str = "auto") -> None:
    """Refuse an unknown strategy or precision, or ``multi-worker``, before any work (no TensorFlow
    needed).

    Raises:
        ValueError: saying what to use instead.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown --precision {precision!r}; expected one of: {', '.join(PRECISIONS)}")
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


def _gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def resolve_precision(name: str) -> str:
    """The Keras dtype policy `name` stands for (``auto``: from the hardware, see the module)."""
    if name != "auto":
        return name
    gpus = _gpus()
    if not gpus:
        return "float32"
    import tensorflow as tf

    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
    return "mixed_bfloat16" if capability >= (8, 0) else "mixed_float16" if capability >= (7, 0) else "float32"


def resolve_xla(jit_compile: bool | None) -> bool:
    """Whether to compile with XLA: as set, or (None) on a GPU only."""
    return bool(_gpus()) if jit_compile is None else jit_compile


@contextlib.contextmanager
def precision_policy(name: str):
    """Build models inside this block with the dtype policy `name` stands for; the global policy is
    restored after it (a mixed-precision run does not leak into the next model of the process)."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve_precision(name))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
