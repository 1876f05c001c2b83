"""Everyday scoring: score photos with a run or an exported SavedModel, rank one pet's photos.

A *scorer* wraps either a run folder (the Keras model; photos decoded by the training reader
:mod:`pawtf.data.images`, so scores are exactly what the model saw in training) or an exported SavedModel
(``saved_models/NAME`` for its latest version, or ``saved_models/NAME/<N>``; encoded bytes go through its
``serving_default`` signature, exactly what TF Serving computes). :func:`load_scorer` picks by what the
folder holds.

Every photo gets a :class:`Score`; a photo that cannot be read or scored gets its error instead, and the
rest of the batch goes on.

Example:

>>> from pawtf.predict import load_scorer, predict, rank, contact_sheet
>>> scorer = load_scorer("runs/demo")                                     # doctest: +SKIP
>>> scores = predict(scorer, ["photos/"], metadata="photos.csv")          # doctest: +SKIP
>>> ranked = rank(scorer, ["rex/"]); contact_sheet(ranked, "rex.png")     # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import re
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pawtf import tasks
from pawtf.data.images import DEFAULT_MAX_PIXELS, ImageError, load_rgb
from pawtf.data.schema import FLAGS, ID_COLUMN, read_table

logger = logging.getLogger(__name__)

#: File extensions collected from folders (files named explicitly are tried whatever their extension).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
DEFAULT_BATCH_SIZE = 32
NO_FLAGS_WARNING = ("warning: the model takes the 12 metadata flags and no metadata CSV was given: every "
                    "photo is scored with all flags 0")


@dataclasses.dataclass
class Score:
    """One photo's prediction, or why it has none.

    ``score`` is the predicted Pawpularity (0-100; None for a buckets model). ``extra`` holds what the
    model predicts besides: each flag's probability by flag name (image-only multitask and attribute-fed
    models), or ``bucket`` (the label) and ``p_poor``, ``p_average``, ``p_great`` (buckets models).
    """

    path: str
    score: float | None = None
    error: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def rank_value(self) -> float:
        """What ranking sorts by: the score, or a buckets model's expected class (0 Poor .. 2 Great)."""
        if self.score is not None:
            return self.score
        probs = [self.extra[_prob_column(label)] for label in tasks.BUCKET_LABELS]
        return float(tasks.expected_bucket(probs))

    @property
    def label(self) -> str:
        """The prediction in a few characters (contact sheets, listings)."""
        if self.score is not None:
            return f"{self.score:.1f}"
        return str(self.extra.get("bucket", "?"))


def _prob_column(label: str) -> str:
    return f"p_{label.lower()}"


def _results(outputs: dict[str, np.ndarray]) -> list[tuple[float | None, dict]]:
    """Per row (score, extra) from a model's outputs by name (``pawpularity``, ``flags``, ``buckets``)."""
    n = len(next(iter(outputs.values())))
    score = outputs.get(tasks.SCORE_OUTPUT)
    score = None if score is None else np.asarray(score, np.float32).reshape(n, -1)[:, 0]
    rows = []
    for i in range(n):
        extra = {}
        if tasks.FLAGS_OUTPUT in outputs:
            extra.update(zip(FLAGS, (float(v) for v in outputs[tasks.FLAGS_OUTPUT][i])))
        if tasks.BUCKETS_OUTPUT in outputs:
            probs = np.asarray(outputs[tasks.BUCKETS_OUTPUT][i], float)
            extra["bucket"] = tasks.BUCKET_LABELS[int(probs.argmax())]
            extra.update({_prob_column(label): float(p) for label, p in zip(tasks.BUCKET_LABELS, probs)})
        rows.append((None if score is None else float(score[i]), extra))
    return rows


def _rank_values(outputs: dict[str, np.ndarray]) -> np.ndarray:
    if tasks.SCORE_OUTPUT in outputs:
        return np.asarray(outputs[tasks.SCORE_OUTPUT], np.float32).reshape(-1)
    return tasks.expected_bucket(outputs[tasks.BUCKETS_OUTPUT]).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# Scorers


class Scorer:
    """Scores photos. ``image_size`` is the model's input side, ``uses_metadata`` whether it takes the
    12 flags, ``description`` says what it is (for reports)."""

    image_size: int
    uses_metadata: bool
    description: str
    task: str = tasks.SCORE  # what the model predicts (see pawtf.tasks)
    run = None  # the loaded run when there is one (saliency needs the Keras model)

    def score_files(self, paths: Sequence[str], metadata: np.ndarray | None) -> list[Score]:
        """Score one batch of files; per-file errors are returned, never raised."""
        raise NotImplementedError

    def score_arrays(self, images: Sequence[np.ndarray], metadata: np.ndarray | None) -> np.ndarray:
        """Scores [N] for RGB uint8 arrays of any size (e.g. crops), resized like the scorer's files
        (a buckets model's expected class, 0-2, in place of a score)."""
        raise NotImplementedError


class KerasScorer(Scorer):
    """A run folder's Keras model; files decoded by :func:`pawtf.data.images.load_rgb` (as in training)."""

    def __init__(self, run, workers: int = 4):
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
        return tasks.as_dict(self.model.predict_on_batch(inputs), self.task)

    def predict_arrays(self, images: np.ndarray, metadata: np.ndarray | None) -> np.ndarray:
        """Scores [N] (a buckets model: expected class) for images already at the model size."""
        return _rank_values(self.predict_outputs(images, metadata))

    def decode_async(self, paths: Sequence[str]):
        """Start decoding ``paths`` in the thread pool; :meth:`score_decoded` finishes the batch."""
        return [self._pool.submit(self._load, p) for p in paths]

    def score_decoded(self, paths, futures, metadata) -> list[Score]:
        decoded = [f.result() for f in futures]
        good = [i for i, d in enumerate(decoded) if not isinstance(d, Exception)]
        results = [Score(p, error=decoded[i].problem if i not in good else None)
                   for i, p in enumerate(paths)]
        if good:
            meta = None if metadata is None else metadata[good]
            outputs = self.predict_outputs(np.stack([decoded[i] for i in good]), meta)
            for i, (score, extra) in zip(good, _results(outputs)):
                results[i].score, results[i].extra = score, extra
        return results

    def score_files(self, paths, metadata) -> list[Score]:
        return self.score_decoded(paths, self.decode_async(paths), metadata)

    def score_arrays(self, images, metadata) -> np.ndarray:
        size = (self.image_size, self.image_size)
        batch = np.stack([_resize_like_training(im, size) for im in images])
        return self.predict_arrays(batch, metadata)


class SavedModelScorer(Scorer):
    """An exported SavedModel version folder; encoded bytes go through ``serving_default``."""

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
        self.task = self.info.get("task", tasks.SCORE)
        self.image_size = int(self.info.get("image_size", 0)) or None
        self.description = f"SavedModel {self.path}"

    def _call(self, data: list[bytes], metadata: np.ndarray | None) -> dict[str, np.ndarray]:
        """The model's outputs by name (as a Keras model's: ``pawpularity``, ``flags``, ``buckets``)."""
        tf = self._tf
        kwargs = {"image_bytes": tf.constant(data, tf.string)}
        if self.uses_metadata:
            kwargs["metadata"] = tf.constant(_metadata_or_zeros(metadata, len(data)))
        out = self._fn(**kwargs)
        names = {tasks.SCORE_OUTPUT: tasks.SCORE_OUTPUT, tasks.FLAGS_OUTPUT: tasks.FLAGS_OUTPUT,
                 "bucket_probabilities": tasks.BUCKETS_OUTPUT}
        return {model_name: out[name].numpy() for name, model_name in names.items() if name in out}

    def score_files(self, paths, metadata) -> list[Score]:
        results = [Score(p) for p in paths]
        data, good = [], []
        for i, p in enumerate(paths):
            try:
                blob = Path(p).read_bytes()
            except OSError as err:
                results[i].error = f"cannot read: {err.strerror or err}"
                continue
            if not blob:
                results[i].error = "empty file (0 bytes)"
                continue
            data.append(blob)
            good.append(i)
        if not good:
            return results
        meta = None if metadata is None else metadata[good]
        try:
            rows = _results(self._call(data, meta))
        except self._tf.errors.InvalidArgumentError:
            rows = []  # one bad image fails the whole batch: score one by one to isolate it
            for k, blob in enumerate(data):
                try:
                    rows += _results(self._call([blob], None if meta is None else meta[k:k + 1]))
                except self._tf.errors.InvalidArgumentError as err:
                    rows.append(None)
                    results[good[k]].error = clean_tf_error(err.message)
        for i, row in zip(good, rows):
            if row is not None:
                results[i].score, results[i].extra = row
        return results

    def score_arrays(self, images, metadata) -> np.ndarray:
        data = []
        for im in images:  # lossless PNG through the serving decoder: the same path as any upload
            buf = io.BytesIO()
            Image.fromarray(np.asarray(im, np.uint8)).save(buf, "PNG", compress_level=1)
            data.append(buf.getvalue())
        return _rank_values(self._call(data, metadata))


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
    from pawtf.export import versions

    found = versions(base)
    if not found:
        raise FileNotFoundError(f"{base} holds no SavedModel versions (integer sub-folders)")
    return Path(base) / str(found[-1])


def load_scorer(path: str | Path) -> Scorer:
    """A scorer for a run folder (``model.keras`` + ``config.json``), a SavedModel version folder, or a
    model folder of integer versions (the latest is used)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist (expected a run folder or a SavedModel)")
    if (path / "model.keras").is_file() or (path / "config.json").is_file():
        from pawtf.runs import load_run

        return KerasScorer(load_run(path))
    if (path / "saved_model.pb").is_file():
        return SavedModelScorer(path)
    if path.is_dir():
        from pawtf.export import versions

        if versions(path):
            return SavedModelScorer(latest_version(path))
    raise FileNotFoundError(f"{path} is neither a pawtf run folder (model.keras + config.json) nor a "
                            "SavedModel (saved_model.pb, or integer version folders holding one)")


# ---------------------------------------------------------------------------------------------------------
# Inputs


def collect_photos(inputs: Iterable[str | Path]) -> list[Score]:
    """Expand files and folders (recursively, sorted; hidden entries skipped) into one unscored
    :class:`Score` per photo, in input order. Inputs that do not exist, and folders without photos, come
    back with ``error`` set. Files named explicitly are kept whatever their extension."""
    out: list[Score] = []
    seen = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                out.append(Score(str(p), error="folder holds no photos (" + ", ".join(IMAGE_EXTENSIONS)
                                 + ")"))
            candidates = [str(f) for f in found]
        elif p.exists():
            candidates = [str(p)]
        else:
            out.append(Score(str(p), error="missing (no such file or folder)"))
            continue
        for c in candidates:
            if c not in seen:
                seen.add(c)
                out.append(Score(c))
    return out


def read_metadata(csv_path: str | Path) -> dict[str, np.ndarray]:
    """Id -> the 12 flags (float32) from a CSV validated by :func:`pawtf.data.schema.read_table`
    (``Id`` + the 12 flag columns; a ``Pawpularity`` column is allowed and ignored)."""
    table, _ = read_table(csv_path, require_target=False)
    flags = table[list(FLAGS)].to_numpy(np.float32)
    return {rid: flags[i] for i, rid in enumerate(table[ID_COLUMN])}


def _metadata_or_zeros(metadata, n: int) -> np.ndarray:
    if metadata is None:
        return np.zeros((n, len(FLAGS)), np.float32)
    return np.asarray(metadata, np.float32).reshape(n, len(FLAGS))


def _resize_like_training(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize as :func:`pawtf.data.images.load_rgb` does (Lanczos, reducing_gap=3)."""
    img = Image.fromarray(np.asarray(image, np.uint8))
    if img.size != size:
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(img, np.uint8)


def _metadata_for(results: list[Score], scorer: Scorer, metadata):
    """Flags per photo (rows aligned with ``results``) or None; photos without a CSV row get an error."""
    if not scorer.uses_metadata:
        if metadata is not None:
            logger.warning("warning: the model is image-only: the metadata CSV is ignored")
        return None
    rows = np.zeros((len(results), len(FLAGS)), np.float32)
    if metadata is None:
        logger.warning(NO_FLAGS_WARNING)
        return rows
    table = read_metadata(metadata) if isinstance(metadata, (str, Path)) else metadata
    for i, r in enumerate(results):
        stem = Path(r.path).stem
        if not r.ok:
            continue
        if stem in table:
            rows[i] = table[stem]
        else:
            r.error = f"no row with Id {stem!r} in the metadata CSV"
    return rows


# ---------------------------------------------------------------------------------------------------------
# Batch scoring


def predict(scorer: Scorer, inputs: Iterable[str | Path], metadata=None, *,
            batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True) -> list[Score]:
    """Score every photo in ``inputs`` (files and folders). ``metadata`` is a CSV path or a dict
    Id -> flags (the Id is the file name without extension); needed by models that take the flags.

    Returns one :class:`Score` per photo (and per missing input) in input order; a photo that cannot be
    scored has ``error`` set and does not stop the others.
    """
    results = collect_photos(inputs)
    photos = [r.path for r in results]
    flags = _metadata_for(results, scorer, metadata)
    todo = [i for i, r in enumerate(results) if r.ok]
    batches = [todo[k:k + batch_size] for k in range(0, len(todo), batch_size)]
    with tqdm(total=len(photos), desc="scoring", unit="photo", disable=not progress, file=sys.stderr,
              leave=False) as bar:
        bar.update(len(photos) - len(todo))
        if isinstance(scorer, KerasScorer):
            # Decode the next batch in threads while the model scores this one.
            pending = deque()
            for idx in batches[:2]:
                pending.append((idx, scorer.decode_async([photos[i] for i in idx])))
            for b in range(len(batches)):
                idx, futures = pending.popleft()
                if b + 2 < len(batches):
                    nxt = batches[b + 2]
                    pending.append((nxt, scorer.decode_async([photos[i] for i in nxt])))
                _store(results, idx, scorer.score_decoded([photos[i] for i in idx], futures,
                                                          None if flags is None else flags[idx]))
                bar.update(len(idx))
        else:
            for idx in batches:
                _store(results, idx, scorer.score_files([photos[i] for i in idx],
                                                        None if flags is None else flags[idx]))
                bar.update(len(idx))
    return results


def _store(results: list[Score], idx: list[int], scores: list[Score]) -> None:
    for i, s in zip(idx, scores):
        results[i].score, results[i].error, results[i].extra = s.score, s.error, s.extra


def write_scores(scores: Sequence[Score], out) -> None:
    """CSV with columns ``path, score``, then whatever else the model predicts (each flag's probability
    under the flag's name; ``bucket`` and ``p_poor``, ``p_average``, ``p_great``), then ``error``
    (values empty on error), to a path or an open text file."""
    own = isinstance(out, (str, Path))
    fh = open(out, "w", newline="") if own else out
    extra = list(dict.fromkeys(k for s in scores for k in s.extra))
    try:
        writer = csv.writer(fh)
        writer.writerow(["path", "score", *extra, "error"])
        for s in scores:
            values = [_cell(s.extra.get(k)) for k in extra]
            writer.writerow([s.path, _cell(s.score), *values, s.error or ""])
    finally:
        if own:
            fh.close()


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------------------
# Ranking and the contact sheet


def rank(scorer: Scorer, inputs: Iterable[str | Path], metadata=None, **kwargs) -> list[Score]:
    """Score the photos of one pet and sort them best first (photos with errors last, in input order)."""
    scores = predict(scorer, inputs, metadata, **kwargs)
    good = sorted((s for s in scores if s.ok), key=lambda s: -s.rank_value)
    return good + [s for s in scores if not s.ok]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _thumbnail(path: str, side: int) -> Image.Image | None:
    try:
        img = Image.fromarray(load_rgb(path, max_pixels=DEFAULT_MAX_PIXELS))
    except ImageError:
        return None
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return img


def _ellipsize(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("..." + text, font=font) > width:
        text = text[1:]
    return "..." + text


def contact_sheet(ranked: Sequence[Score], out: str | Path, *, thumb: int = 220, columns: int | None = None,
                  title: str | None = None) -> Path:
    """Write a PNG of thumbnails best first, each labelled with its rank, score and file name; the best
    photo is framed. Photos that could not be scored appear last with their error."""
    from PIL import ImageDraw

    ranked = list(ranked)
    if not ranked:
        raise ValueError("no photos to put on a contact sheet")
    n = len(ranked)
    columns = columns or min(n, max(1, int(np.ceil(np.sqrt(n * 1.5)))))
    rows = int(np.ceil(n / columns))
    pad, label_h, title_h = 12, 58, 40 if title else 0
    cell_w, cell_h = thumb + pad, thumb + label_h + pad
    sheet = Image.new("RGB", (columns * cell_w + pad, rows * cell_h + pad + title_h), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    big, small = _font(20), _font(12)
    if title:
        draw.text((pad, pad), _ellipsize(draw, title, big, sheet.width - 2 * pad), fill=(20, 20, 20),
                  font=big)
    position = 0
    for s in ranked:
        r, c = divmod(position, columns)
        x0, y0 = pad + c * cell_w, pad + title_h + r * cell_h
        tile = _thumbnail(s.path, thumb) if s.ok else None
        if tile is not None:
            ox, oy = x0 + (thumb - tile.width) // 2, y0 + (thumb - tile.height) // 2
            sheet.paste(tile, (ox, oy))
            if position == 0:
                draw.rectangle([ox - 4, oy - 4, ox + tile.width + 3, oy + tile.height + 3],
                               outline=(30, 160, 60), width=4)
        else:
            draw.rectangle([x0, y0, x0 + thumb - 1, y0 + thumb - 1], fill=(225, 225, 225))
        ty = y0 + thumb + 4
        if s.ok:
            draw.text((x0, ty), f"#{position + 1}   {s.label}", fill=(20, 20, 20), font=big)
        else:
            draw.text((x0, ty), "not scored", fill=(170, 30, 30), font=big)
        draw.text((x0, ty + 24), _ellipsize(draw, Path(s.path).name, small, thumb), fill=(70, 70, 70),
                  font=small)
        if not s.ok:
            draw.text((x0, ty + 38), _ellipsize(draw, s.error, small, thumb), fill=(170, 30, 30),
                      font=small)
        position += 1
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, "PNG")
    return out


def summary(scores: Sequence[Score]) -> str:
    """One line: how many photos were scored, and the errors (for the command's stderr)."""
    bad = [s for s in scores if not s.ok]
    line = f"scored {len(scores) - len(bad)} of {len(scores)} photos"
    if bad:
        line += f"; {len(bad)} not scored:\n" + "\n".join(f"  {s.path}: {s.error}" for s in bad[:20])
        if len(bad) > 20:
            line += f"\n  ... and {len(bad) - 20} more (see the error column)"
    return line
