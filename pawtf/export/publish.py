"""Publish a run as a versioned SavedModel for TF Serving: signatures, checks, atomic versions.

``export(run, "saved_models/pawpularity")`` writes ``saved_models/pawpularity/<N>/`` where N is the next
integer version (the layout TF Serving watches). The SavedModel is written to a hidden temporary folder in
the same parent, checked (reloaded; its predictions compared with the Keras model's), flushed to disk and
renamed into place, so a crash never leaves a half-written version and an existing version is never
overwritten.

Signatures (input names follow TF Serving's REST convention, so
``{"instances": [{"image_bytes": {"b64": "..."}, "metadata": [0, 1, ...]}]}`` works):

``serving_default``
    ``image_bytes`` tf.string [batch] (encoded JPEG, PNG, GIF, BMP or WebP, decoded in-graph by
    `pawtf.export.decode`) and, unless the model is image-only, ``metadata`` float32 [batch, 12] (the
    flags in ``pawtf.data.schema.FLAGS`` order, 0 or 1). Returns what the run's task predicts
    (`pawtf.tasks.Task.signature_outputs`): ``pawpularity`` float32 [batch] on the 0-100 scale (score,
    multitask, attribute-fed); ``flags`` float32 [batch, 12] and one ``flag_<name>`` [batch] per flag,
    e.g. ``flag_subject_focus`` (multitask, attribute-fed: probabilities); ``bucket_probabilities``
    [batch, 3] (Poor, Average, Great) and ``bucket`` tf.string [batch] (buckets).
``serving_decoded``
    ``image`` float32 [batch, height, width, 3] (RGB pixels 0-255; resized in-graph unless already at the
    model's size) and ``metadata`` as above; same output.

A bad image makes the request fail with an ``InvalidArgumentError`` naming its index in the batch; the
server keeps running.

TF Serving warm-up: ``<N>/assets.extra/tf_serving_warmup_requests`` is a TFRecord of ``PredictionLog``
records (one per size in :data:`WARMUP_BATCH_SIZES`), each a ``serving_default`` PredictRequest of demo
photos as JPEG bytes (rendered at twice the model's side, so the reduced-scale decode and the resize run)
and, where the model takes them, their flags. TF Serving replays them when it loads the version, so the
first real request does not pay for TensorFlow's lazy initialisation. The protos are written by hand
(:func:`prediction_log`, the wire format of ``tensorflow_serving/apis/prediction_log.proto``): the
``tensorflow-serving-api`` package is not needed.

Example:

>>> from pawtf.runs import load_run
>>> from pawtf.export import export
>>> export(load_run("runs/demo"), "saved_models/pawpularity")  # doctest: +SKIP
PosixPath('saved_models/pawpularity/1')
"""

from __future__ import annotations

import datetime
import errno
import io
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from pawtf.data.images import DEFAULT_MAX_PIXELS
from pawtf.data.schema import FLAGS
from pawtf.export.decode import decode_batch, resize
from pawtf.native_log import DECODE_NOISE, filtered_stderr

__all__ = ["CHECK_TOLERANCE", "IMAGE", "IMAGE_BYTES", "INFO_FILE", "METADATA", "SERVING_DECODED",
           "SERVING_DEFAULT", "WARMUP_BATCH_SIZES", "WARMUP_FILE", "ExportError", "default_name", "export",
           "prediction_log",
           "read_info", "versions", "warmup_requests"]

#: Signature names and their input and output keys.
SERVING_DEFAULT = "serving_default"
SERVING_DECODED = "serving_decoded"
IMAGE_BYTES, IMAGE, METADATA = "image_bytes", "image", "metadata"
#: File written beside ``saved_model.pb`` describing the export (TF Serving ignores it).
INFO_FILE = "pawtf.json"
#: Largest difference tolerated between the reloaded SavedModel and the Keras model when checking.
CHECK_TOLERANCE = 1e-3

#: TF Serving's warm-up file, relative to a version folder, and the batch sizes of its requests.
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
WARMUP_BATCH_SIZES = (1, 2, 4, 8)

_PARTIAL_PREFIX = ".partial-"


class ExportError(RuntimeError):
    """The export could not be written or failed its check; nothing was published."""


def _check_metadata(metadata: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    rows = tf.shape(metadata)[0]
    same = tf.debugging.Assert(tf.equal(rows, batch), [tf.strings.format(
        "metadata has {} rows but there are {} images", (rows, batch))])
    valid = tf.debugging.Assert(
        tf.reduce_all((metadata >= 0.0) & (metadata <= 1.0)),
        [f"metadata values must be flags in [0, 1] (columns: {', '.join(FLAGS)})"])
    with tf.control_dependencies([same, valid]):
        return tf.identity(metadata)


def _signatures(model, task, size: int, uses_metadata: bool, max_pixels: int):
    """The two serving functions (tf.function with input signatures) for `model` of `task`."""

    def predict(images, metadata):
        n = tf.shape(images)[0]
        if metadata is not None:
            metadata = _check_metadata(metadata, n)
        # Some layers reject an empty batch: run one blank row instead and return none.
        empty = tf.equal(n, 0)
        images = tf.cond(empty, lambda: tf.zeros([1, size, size, 3]), lambda: images)
        inputs = {IMAGE: images}
        if metadata is not None:
            inputs[METADATA] = tf.cond(empty, lambda: tf.zeros([1, len(FLAGS)]), lambda: metadata)
        return {k: v[:n] for k, v in task.signature_outputs(model(inputs, training=False)).items()}

    def fit_size(image):
        shape = tf.shape(image)
        return tf.cond(tf.reduce_all(tf.equal(shape[1:3], [size, size])), lambda: image,
                       lambda: tf.map_fn(lambda im: resize(im, size), image))

    bytes_spec = tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)
    image_spec = tf.TensorSpec([None, None, None, 3], tf.float32, name=IMAGE)
    meta_spec = tf.TensorSpec([None, len(FLAGS)], tf.float32, name=METADATA)
    if uses_metadata:
        @tf.function(input_signature=[bytes_spec, meta_spec])
        def from_bytes(image_bytes, metadata):
            return predict(decode_batch(image_bytes, size, max_pixels), metadata)

        @tf.function(input_signature=[image_spec, meta_spec])
        def from_images(image, metadata):
            return predict(fit_size(image), metadata)
    else:
        @tf.function(input_signature=[bytes_spec])
        def from_bytes(image_bytes):
            return predict(decode_batch(image_bytes, size, max_pixels), None)

        @tf.function(input_signature=[image_spec])
        def from_images(image):
            return predict(fit_size(image), None)
    return from_bytes, from_images


# ---------------------------------------------------------------------------------------------------------
# TF Serving warm-up requests


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2: string, bytes or message)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def prediction_log(inputs: dict[str, np.ndarray], signature: str = SERVING_DEFAULT, model_name: str = "") -> bytes:
    """A serialized ``tensorflow.serving.PredictionLog`` holding one PredictRequest (what TF Serving's
    warm-up file holds), written without the ``tensorflow-serving-api`` package.

    Field numbers from tensorflow_serving/apis: PredictionLog.predict_log = 6; PredictLog.request = 1;
    PredictRequest.model_spec = 1, .inputs = 2 (map<string, TensorProto>: entries of key = 1, value = 2);
    ModelSpec.name = 1, .signature_name = 3.

    Args:
        inputs: the request's tensors by input name (bytes objects for tf.string inputs).
        signature: the signature the request calls.
        model_name: ``model_spec.name`` (TF Serving's warm-up does not check it).

    Returns:
        The record's bytes.
    """
    spec = (_field(1, model_name.encode()) if model_name else b"") + _field(3, signature.encode())
    entries = b"".join(
        _field(2, _field(1, key.encode()) + _field(2, tf.make_tensor_proto(value).SerializeToString()))
        for key, value in sorted(inputs.items()))
    return _field(6, _field(1, _field(1, spec) + entries))


def warmup_requests(size: int, uses_metadata: bool,
                    batch_sizes: tuple[int, ...] = WARMUP_BATCH_SIZES) -> list[dict[str, np.ndarray]]:
    """``serving_default`` inputs for TF Serving's warm-up: for each batch size, that many demo photos
    (`pawtf.data.demo`, rendered at ``2 * size`` px) as JPEG bytes, and their 12 flags where the model
    takes them.

    Args:
        size: the model's image side.
        uses_metadata: whether the model takes the flags.
        batch_sizes: one request per entry.

    Returns:
        One dict of input name -> array (``image_bytes`` object array of bytes, ``metadata`` float32
        [batch, 12]) per request.
    """
    from pawtf.data.demo import generate_sample

    photos, flags = [], []
    for i in range(max(batch_sizes)):
        _, image, _, sample_flags, _, _, _ = generate_sample(i, size=2 * size, seed=0)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=85)
        photos.append(buf.getvalue())
        flags.append([float(sample_flags[name]) for name in FLAGS])
    requests = []
    for n in batch_sizes:
        request = {IMAGE_BYTES: np.array(photos[:n], dtype=object)}
        if uses_metadata:
            request[METADATA] = np.array(flags[:n], np.float32)
        requests.append(request)
    return requests


def _write_warmup(path: Path, requests: list[dict[str, np.ndarray]], model_name: str) -> None:
    target = path / WARMUP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for request in requests:
            writer.write(prediction_log(request, SERVING_DEFAULT, model_name))


# ---------------------------------------------------------------------------------------------------------
# Versioned, atomic export


def versions(base: str | Path) -> list[int]:
    """The integer versions present under ``base`` (TF Serving's layout), ascending."""
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def _clean_stale_partials(base: Path) -> None:
    """Remove temporary folders left by exports on this host whose process no longer runs."""
    host = socket.gethostname()
    for p in base.glob(f"{_PARTIAL_PREFIX}*"):
        parts = p.name[len(_PARTIAL_PREFIX):].split("-")
        if len(parts) < 3 or "-".join(parts[:-2]) != host or not parts[-2].isdigit():
            continue
        try:
            os.kill(int(parts[-2]), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(dirpath)


def _fsync_dir(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check(path: Path, model, task, size: int, uses_metadata: bool,
           warmup: Sequence[dict[str, np.ndarray]] = ()) -> None:
    """Reload the SavedModel, compare both signatures with the Keras model on a few inputs and replay
    the warm-up requests (TF Serving refuses to load a version whose warm-up fails)."""
    loaded = tf.saved_model.load(str(path))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, size, size, 3)).astype(np.float32)
    meta = rng.integers(0, 2, (2, len(FLAGS))).astype(np.float32)
    extra = {METADATA: tf.constant(meta)} if uses_metadata else {}
    model_inputs = {IMAGE: images, **({METADATA: meta} if uses_metadata else {})}
    expected = task.signature_outputs(model(model_inputs, training=False))
    got = loaded.signatures[SERVING_DECODED](image=tf.constant(images), **extra)
    for name, want in expected.items():
        if want.dtype == tf.string:
            same = np.array_equal(got[name].numpy(), want.numpy())
            diff = 0.0 if same else np.inf
        else:
            diff = float(np.max(np.abs(got[name].numpy() - want.numpy())))
        if not diff <= CHECK_TOLERANCE:
            raise ExportError(f"the reloaded SavedModel differs from the Keras model by {diff:.3g} "
                              f"on {name!r}; nothing was published")
    jpegs = tf.stack([tf.io.encode_jpeg(tf.constant(im.astype(np.uint8))) for im in images])
    with filtered_stderr(DECODE_NOISE):  # the first decode's oneDNN note
        out = loaded.signatures[SERVING_DEFAULT](image_bytes=jpegs, **extra)
    if not np.all(np.isfinite(out[next(iter(expected))].numpy())):
        raise ExportError("serving_default returned non-finite scores; nothing was published")
    for request in warmup:
        inputs = {IMAGE_BYTES: tf.constant(list(request[IMAGE_BYTES]), tf.string)}
        if METADATA in request:
            inputs[METADATA] = tf.constant(request[METADATA])
        with filtered_stderr(DECODE_NOISE):
            out = loaded.signatures[SERVING_DEFAULT](**inputs)
        if not np.all(np.isfinite(out[next(iter(expected))].numpy())):
            raise ExportError("serving_default returned non-finite scores on the warm-up requests; "
                              "nothing was published")


def default_name(run) -> str:
    """The model name an export of `run` goes under (``saved_models/<name>/<N>``, TF Serving's
    ``MODEL_NAME``): ``pawpularity`` for a score model, ``pawpularity_<task>`` for the others, whose
    outputs differ (a client of one would break on the other's versions).

    >>> class Run: task = __import__("pawtf.tasks", fromlist=["get"]).get("buckets")
    >>> default_name(Run())
    'pawpularity_buckets'
    """
    task = run.task.name
    return "pawpularity" if task == "score" else "pawpularity_" + task.replace("-", "_")


def export(run, out: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, check: bool = True,
           allow_unfinished: bool = False) -> Path:
    """Export ``run`` (a :class:`pawtf.runs.Run`) to ``out/<N>/``, N the next integer version.

    A run whose training did not finish (killed: no metrics yet) is refused unless
    ``allow_unfinished``: its model is only the best epoch so far, never evaluated.

    The SavedModel is written to a hidden ``out/.partial-*`` folder, checked against the Keras model
    (``check``), synced to disk and renamed to ``out/<N>``; an existing version is never replaced (if
    another export takes N first, N+1 is used). Returns the version folder. ``max_pixels`` bounds the
    pixel count of an image accepted by ``serving_default`` (decompression-bomb guard). The version holds
    TF Serving's warm-up requests (:data:`WARMUP_FILE`, named after ``out``'s folder as the model).
    """
    if not run.finished and not allow_unfinished:
        raise ExportError(f"{run.path} is an unfinished run (its training was stopped before the end: no "
                          "metrics yet); resume it with the same train command, or pass --allow-unfinished "
                          "to export its best epoch so far")
    base = Path(out)
    if base.exists() and not base.is_dir():
        raise ExportError(f"{base} exists and is not a folder")
    base.mkdir(parents=True, exist_ok=True)
    _clean_stale_partials(base)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_PARTIAL_PREFIX}{socket.gethostname()}-{os.getpid()}-",
                                dir=base))
    try:
        size, uses_metadata = int(run.image_size), bool(run.uses_metadata)
        _write(tmp, run.model, run.task, size, uses_metadata, max_pixels)
        warmup = warmup_requests(size, uses_metadata)
        _write_warmup(tmp, warmup, base.resolve().name)
        if check:
            _check(tmp, run.model, run.task, size, uses_metadata, warmup)
        (tmp / INFO_FILE).write_text(json.dumps(_info(run, max_pixels), indent=2) + "\n")
        return _publish(tmp, base)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write(path: Path, model, task, size: int, uses_metadata: bool, max_pixels: int) -> None:
    """Write the SavedModel with both signatures into the (existing, empty) folder ``path``."""
    from keras.export import ExportArchive

    from_bytes, from_images = _signatures(model, task, size, uses_metadata, max_pixels)
    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING_DEFAULT, from_bytes)
    archive.add_endpoint(SERVING_DECODED, from_images)
    archive.write_out(str(path), verbose=False)


def _info(run, max_pixels: int) -> dict:
    uses_metadata = bool(run.uses_metadata)
    extra = [METADATA] if uses_metadata else []
    outputs = run.task.signature_output_names
    return {
        "pawtf_version": _pawtf_version(),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": Path(run.path).resolve().name,  # a name, never a local path
        "trained_on": run.metrics.get("trained_on") or {"synthetic_demo": run.trained_on_demo},
        "image_size": int(run.image_size),
        "uses_metadata": uses_metadata,
        "flags": list(FLAGS) if uses_metadata else [],
        "task": run.task.name,
        **run.task.export_info(run.metrics),
        "backbone": run.config.model.backbone,
        "signatures": {
            SERVING_DEFAULT: {"inputs": [IMAGE_BYTES] + extra, "outputs": outputs},
            SERVING_DECODED: {"inputs": [IMAGE] + extra, "outputs": outputs},
        },
        "max_pixels": max_pixels,
        "warmup": {"file": WARMUP_FILE, "signature": SERVING_DEFAULT, "batch_sizes": list(WARMUP_BATCH_SIZES)},
        "metrics": run.metrics,
        "config": _portable(run.config.to_dict()),
    }


def _portable(config: dict) -> dict:
    """`config` with its local paths (the data folder, a weights file) reduced to their names.

    >>> _portable({"data": {"data_dir": "/home/me/data/demo"}, "model": {"weights": "/w/lite.h5"}})
    {'data': {'data_dir': 'demo'}, 'model': {'weights': 'lite.h5'}}
    """
    config = json.loads(json.dumps(config))
    data, model = config.get("data", {}), config.get("model", {})
    if data.get("data_dir"):
        data["data_dir"] = Path(data["data_dir"]).name
    if model.get("weights") not in (None, "imagenet", "none"):
        model["weights"] = Path(model["weights"]).name
    return config


def _publish(tmp: Path, base: Path) -> Path:
    """Sync ``tmp`` to disk and rename it to ``base/<next version>``; never replaces a version."""
    _fsync_tree(tmp)
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a server user must be able to read it
    tried = 0
    while True:
        # Every integer name counts (even a file), and each attempt goes higher than the last.
        taken = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
        tried = max([tried, *taken]) + 1
        target = base / str(tried)
        if os.path.lexists(target):
            continue
        try:
            os.rename(tmp, target)  # atomic; fails on a non-empty folder or a file of that name
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                continue  # another export took this version first
            raise
        _fsync_dir(base)
        return target


def _pawtf_version() -> str:
    import pawtf

    return getattr(pawtf, "__version__", "unknown")


def read_info(version_dir: str | Path) -> dict:
    """The ``pawtf.json`` written beside an exported SavedModel ({} if absent: exported elsewhere)."""
    path = Path(version_dir) / INFO_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
