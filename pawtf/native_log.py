"""TensorFlow's native start-up chatter, filtered out of stderr without hiding anything else.

TensorFlow's C++ libraries write lines such as ``I0000 ... oneDNN custom operations are on``,
``Could not find cuda drivers on your machine`` and ``WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR`` straight to file descriptor 2 when they load;
``TF_CPP_MIN_LOG_LEVEL`` no longer stops them (tensorflow#100442). :func:`filtered_stderr` sends the
descriptor to a temporary file while a block runs, then writes back every line that is not known
chatter, so real errors still reach the user (after the block instead of during it).

Example:

>>> with filtered_stderr():                       # doctest: +SKIP
...     import tensorflow
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from typing import Iterator, Sequence

__all__ = ["DECODE_NOISE", "STARTUP_CHATTER", "filtered_stderr", "import_tensorflow", "is_chatter"]

_NO_GPU = not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))

#: Patterns of the lines TensorFlow prints at start-up that say nothing a user can act on. The CUDA
#: lines count only where the machine has no NVIDIA device (there they explain the CPU fallback).
STARTUP_CHATTER: tuple[str, ...] = (
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"oneDNN custom operations are on",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
) + ((r"Could not find cuda drivers on your machine", r"failed call to cuInit",
      r"TF-TRT Warning: Could not find TensorRT") if _NO_GPU else ())


#: Patterns of the lines TensorFlow's image decoders and executor print while a SavedModel refuses an
#: image (libjpeg's warnings and errors, the aborted rendezvous and its node line) or on the first decode
#: (a oneDNN note). The refusal itself reaches the caller as an exception; a scorer filters these lines
#: around its call (`pawtf.scorers.SavedModelScorer`).
DECODE_NOISE: tuple[str, ...] = (
    r"Premature end of JPEG data",
    r"Corrupt JPEG data: ",
    r"^Improper call to JPEG library in state \d+$",
    r"^Input file read error$",
    r"^Not a JPEG file: starts with ",
    r"Local rendezvous is aborting with status: INVALID_ARGUMENT",
    r"^\s*\[\[\{\{function_node [^\n]*\}\}\]\]\s*$",
    r"oneDNN supports DT_UINT8 only on platforms with AVX-512",
)


def is_chatter(line: str, patterns: Sequence[str] = STARTUP_CHATTER) -> bool:
    """Whether `line` matches one of `patterns`.

    >>> is_chatter("I0000 00:00:17 6827 port.cc:153] oneDNN custom operations are on. You may see ...")
    True
    >>> is_chatter("E0000 00:00:17 6827 some_op.cc:12] Out of memory")
    False
    """
    return any(re.search(p, line) for p in patterns)


@contextlib.contextmanager
def filtered_stderr(patterns: Sequence[str] = STARTUP_CHATTER) -> Iterator[None]:
    """While the block runs, collect everything written to file descriptor 2 (where native libraries
    write, whatever `sys.stderr` is at the time); afterwards write back the lines that match none of
    `patterns`. Blocks in several threads take turns (one redirection at a time)."""
    with _REDIRECTING:
        _flush_stderr()
        saved = os.dup(_STDERR_FD)
        with tempfile.TemporaryFile(mode="w+b") as capture:
            os.dup2(capture.fileno(), _STDERR_FD)
            try:
                yield
            finally:
                _flush_stderr()
                os.dup2(saved, _STDERR_FD)
                os.close(saved)
                capture.seek(0)
                text = capture.read().decode("utf-8", "replace")
    kept = [line for line in text.splitlines(keepends=True) if not is_chatter(line, patterns)]
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


_STDERR_FD = 2
_REDIRECTING = threading.RLock()


def _flush_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


class _NoRetracingNote(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning: each newly
    loaded or built Keras model traces its own predict function (a run evaluated, reloaded and evaluated
    again, say), which is expected here and says nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def import_tensorflow():
    """``import tensorflow`` without its start-up chatter; returns the module.

    The devices are listed inside the filter too: TensorFlow looks for CUDA on its first device
    query, not at import, and says ``failed call to cuInit`` there on a machine without a GPU.
    TensorFlow's Python warning about retracing (:class:`_NoRetracingNote`) is dropped as well.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_stderr():
        import tensorflow

        tensorflow.config.list_physical_devices()
    tensorflow.get_logger().addFilter(_NoRetracingNote())
    return tensorflow
