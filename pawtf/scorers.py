"""Scorers: score photos with a run folder or an exported SavedModel, whichever the user has.

A scorer wraps either a run (`pawtf.runs.Run`: the Keras model; photos decoded by the training reader
:mod:`pawtf.data.images`, so scores are exactly what the model saw in training) or an exported SavedModel
(``saved_models/NAME`` for its latest version, or ``saved_models/NAME/<N>``; encoded bytes go through its
``serving_default`` signature, exactly what TF Serving computes). :func:`load_scorer` picks by what the
folder holds. Either way the scorer knows its task (`pawtf.tasks`), so a prediction is turned into a
:class:`Score` the same way.

Example:

>>> from pawtf.scorers import load_scorer
>>> scorer = load_scorer("runs/demo")                          # doctest: +SKIP
>>> scorer.score_files(["rex.jpg"], metadata=None)[0].score    # doctest: +SKIP
41.7
"""

from __future__ import annotations

import dataclasses
import io
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from pawtf import runs, tasks
from pawtf.data.images import DEFAULT_MAX_PIXELS, ImageError, decode_rgb, load_rgb, read_bytes
from pawtf.data.photos import resize_like_training
from pawtf.data.schema import FLAGS
from pawtf.native_log import DECODE_NOISE, filtered_stderr

__all__ = ["KerasScorer", "SavedModelScorer", "Score", "Scorer", "clean_tf_error", "latest_version",
           "load_scorer"]


@dataclasses.dataclass
class Score:
    """One photo's prediction, or why it has none.

    ``score`` is the predicted Pawpularity (0-100; None for a buckets model). ``extra`` holds what the
    model predicts besides: each flag's probability by flag name (multitask and attribute-fed models),
    or ``bucket`` (the label) and ``p_poor``, ``p_average``, ``p_great`` (buckets models).
    ``rank_value`` is what ranking sorts by (the score, or a buckets model's expected class 0-2) and
    ``label`` the prediction in a few characters.
    """

    path: str
    score: float | None = None
    error: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    rank_value: float | None = None
    label: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def fill(self, prediction: tasks.Prediction) -> "Score":
        """Set the prediction's fields; returns self."""
        self.score, self.extra = prediction.score, prediction.extra
        self.rank_value, self.label = prediction.rank_value, prediction.label
        return self


class Scorer:
    """Scores photos. ``image_size`` is the model's input side, ``uses_metadata`` whether it takes the
    12 flags, ``task`` what it predicts, ``description`` what it is (for reports); ``run`` is the loaded
    run when there is one (saliency needs the Keras model)."""

    image_size: int
    uses_metadata: bool
    description: str
    task: tasks.Task = tasks.get("score")
    run: runs.Run | None = None

    def score_files(self, paths: Sequence[str], metadata: np.ndarray | None) -> list[Score]:
        """Score one batch of files; per-file errors are returned, never raised."""
        raise NotImplementedError

    def outputs_for_arrays(self, images: Sequence[np.ndarray], metadata: np.ndarray | None
                           ) -> dict[str, np.ndarray]:
        """The model's outputs by name for RGB uint8 arrays of any size (e.g. crops), resized like the
        scorer's files."""
        raise NotImplementedError

    def score_arrays(self, images: Sequence[np.ndarray], metadata: np.ndarray | None) -> np.ndarray:
        """Ranking values [N] (the score, or a buckets model's expected class) for RGB uint8 arrays."""
        return self.task.rank_values(self.outputs_for_arrays(images, metadata))


def _metadata_or_zeros(metadata, n: int) -> np.ndarray:
    if metadata is None:
        return np.zeros((n, len(FLAGS)), np.float32)
    return np.asarray(metadata, np.float32).reshape(n, len(FLAGS))


class KerasScorer(Scorer):
    """A run's Keras model; files decoded by :func:`pawtf.data.images.load_rgb` (as in training)."""

    def __init__(self, run: runs.Run, workers: int = 4):
        self.run = run
        self.model = run.model
        self.image_size = int(run.image_size)
        self.uses_metadata = bool(run.uses_metadata)
        self.task = run.task
        self.description = f"run {run.path}"
        self._pool = ThreadPoolExecutor(max_workers=workers)

    def _load(self, path: str):
        try:
            return load_rgb(path, size=(self.image_size, self.image_size))
        except ImageError as err:
            return err

    def predict_outputs(self, images: np.ndarray, metadata: np.ndarray | None) -> dict[str, np.ndarray]:
        """The model's outputs by name for float32/uint8 images already at the model size."""
        inputs = {"image": np.asarray(images, np.float32)}
        if self.uses_metadata:
            inputs["metadata"] = _metadata_or_zeros(metadata, len(images))
        return self.task.as_dict(self.model.predict_on_batch(inputs))

    def decode_async(self, paths: Sequence[str]):
        """Start decoding ``paths`` in the thread pool; :meth:`score_decoded` finishes the batch."""
        return [self._pool.submit(self._load, p) for p in paths]

    def score_decoded(self, paths, futures, metadata) -> list[Score]:
        decoded = [f.result() for f in futures]
        results = [Score(p, error=d.problem if isinstance(d, Exception) else None)
                   for p, d in zip(paths, decoded)]
        good = [i for i, r in enumerate(results) if r.ok]
        if good:
            meta = None if metadata is None else metadata[good]
            outputs = self.predict_outputs(np.stack([decoded[i] for i in good]), meta)
            for i, prediction in zip(good, self.task.predictions(outputs)):
                results[i].fill(prediction)
        return results

    def score_files(self, paths, metadata) -> list[Score]:
        return self.score_decoded(paths, self.decode_async(paths), metadata)

    def outputs_for_arrays(self, images, metadata):
        batch = np.stack([resize_like_training(im, self.image_size) for im in images])
        return self.predict_outputs(batch, metadata)


# filtered_stderr redirects the process's stderr descriptor; two at once would lose each other's lines.
_STDERR_LOCK = threading.Lock()


class SavedModelScorer(Scorer):
    """An exported SavedModel version folder; encoded bytes go through ``serving_default``. Files are
    read as the training reader opens them (regular files only), and a refused image gets the training
    reader's description of the problem where it has one (:meth:`refusal`)."""

    def __init__(self, version_dir: str | Path):
        import tensorflow as tf

        from pawtf.export import SERVING_DEFAULT, read_info

        self.path = Path(version_dir)
        self._tf = tf
        self._loaded = tf.saved_model.load(str(self.path))
        if SERVING_DEFAULT not in self._loaded.signatures:
            raise ValueError(f"{self.path} has no {SERVING_DEFAULT!r} signature")
        self._fn = self._loaded.signatures[SERVING_DEFAULT]
        inputs = self._fn.structured_input_signature[1]
        if "image_bytes" not in inputs:
            raise ValueError(f"{self.path}: {SERVING_DEFAULT} takes {sorted(inputs)}, not image_bytes; "
                             "was it exported by pawtf?")
        self.uses_metadata = "metadata" in inputs
        self.info = read_info(self.path)
        self.task = tasks.get(self.info.get("task", "score"))
        self.image_size = int(self.info.get("image_size", 0)) or None
        self.max_pixels = int(self.info.get("max_pixels", DEFAULT_MAX_PIXELS))
        self.description = f"SavedModel {self.path}"

    def _call(self, data: list[bytes], metadata: np.ndarray | None) -> dict[str, np.ndarray]:
        """The model's outputs by name (as a Keras model's: ``pawpularity``, ``flags``, ``buckets``).
        What TensorFlow's decoders print to stderr about a refused image is dropped (the refusal is
        raised); anything else printed meanwhile is passed on."""
        tf = self._tf
        kwargs = {"image_bytes": tf.constant(data, tf.string)}
        if self.uses_metadata:
            kwargs["metadata"] = tf.constant(_metadata_or_zeros(metadata, len(data)))
        # filtered_stderr swaps the process's file descriptor 2: one call at a time.
        with _STDERR_LOCK, filtered_stderr(DECODE_NOISE):
            out = {name: t.numpy() for name, t in self._fn(**kwargs).items()}
        return self.task.from_signature(out)

    def refusal(self, data: bytes, message: str) -> str:
        """Why the SavedModel refused the image `data` (TensorFlow's error `message`): in the training
        reader's words where it refuses the image too, so a file reads the same whether scored with a
        run or a SavedModel; otherwise the readable part of `message` (e.g. a format the training
        reader takes but the in-graph decoder does not)."""
        size = None if not self.image_size else (self.image_size, self.image_size)
        try:
            decode_rgb(data, size=size, max_pixels=self.max_pixels)
        except ImageError as err:
            return err.problem
        return clean_tf_error(message)

    def score_files(self, paths, metadata) -> list[Score]:
        results = [Score(p) for p in paths]
        data, good = [], []
        for i, p in enumerate(paths):
            try:  # only regular files are read (a named pipe would block forever)
                data.append(read_bytes(p))
            except ImageError as err:
                results[i].error = err.problem
                continue
            good.append(i)
        if not good:
            return results
        meta = None if metadata is None else metadata[good]
        errors = self._tf.errors.OpError
        try:
            rows = self.task.predictions(self._call(data, meta))
        except errors:
            rows = []  # one bad image fails the whole batch: score one by one to isolate it
            for k, blob in enumerate(data):
                try:
                    rows += self.task.predictions(self._call([blob], None if meta is None else meta[k:k + 1]))
                except errors as err:
                    rows.append(None)
                    results[good[k]].error = self.refusal(blob, err.message)
        for i, row in zip(good, rows):
            if row is not None:
                results[i].fill(row)
        return results

    def outputs_for_arrays(self, images, metadata):
        data = []
        for im in images:  # lossless PNG through the serving decoder: the same path as any upload
            buf = io.BytesIO()
            Image.fromarray(np.asarray(im, np.uint8)).save(buf, "PNG", compress_level=1)
            data.append(buf.getvalue())
        return self._call(data, metadata)


def clean_tf_error(message: str) -> str:
    """The readable part of a TensorFlow error message: no graph/function-node noise, no batch index.

    >>> clean_tf_error("Graph execution error:\\n\\nDetected at node x defined at (most recent call "
    ...                "last):\\n<stack traces unavailable>\\nassertion failed: [image_bytes[0]: not a "
    ...                "JPEG (5 bytes)]\\n\\t [[{{node map/while/Assert/Assert}}]] [Op:__inference_f_1]")
    'not a JPEG (5 bytes)'
    """
    text = re.sub(r"\{\{[^}]*\}\}", "", message)
    text = re.sub(r"\[\[.*?\]\]", "", text, flags=re.S)
    text = re.sub(r"\[Op:[^\]]*\]", "", text)
    text = text.replace("Graph execution error:", "")
    text = re.sub(r"Detected at node .*? defined at \(most recent call last\):", "", text, flags=re.S)
    text = re.sub(r"<stack traces unavailable>", "", text)
    text = re.sub(r"assertion failed: \[(.*)\]", r"\1", text, flags=re.S)
    text = re.sub(r"image_bytes\[\d+\]:\s*", "", text)
    return " ".join(text.split())


def latest_version(base: str | Path) -> Path:
    """The newest integer version folder under `base` (TF Serving's layout).

    Raises:
        FileNotFoundError: `base` holds no version.
    """
    from pawtf.export import versions

    found = versions(base)
    if not found:
        raise FileNotFoundError(f"{base} holds no SavedModel versions (integer sub-folders)")
    return Path(base) / str(found[-1])


def load_scorer(path: str | Path) -> Scorer:
    """A scorer for a run folder, a SavedModel version folder, or a model folder of integer versions
    (the latest is used).

    Raises:
        FileNotFoundError: `path` is none of those.
        ValueError: a SavedModel that pawtf did not export.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist (expected a run folder or a SavedModel)")
    if runs.is_run(path):
        return KerasScorer(runs.load_run(path))
    if (path / "saved_model.pb").is_file():
        return SavedModelScorer(path)
    if path.is_dir():
        from pawtf.export import versions

        if versions(path):
            return SavedModelScorer(latest_version(path))
    raise FileNotFoundError(f"{path} is neither a pawtf run folder nor a SavedModel (saved_model.pb, or "
                            "integer version folders holding one)")
