"""What the web page does, without the web: score, rank, explain and crop uploaded photos with one model.

:class:`PhotoService` loads the model once (a run folder or an exported SavedModel, as
:func:`pawtf.scorers.load_scorer` takes) and answers with plain dicts, ready for JSON. Every answer comes
from the library's public functions on the uploaded bytes, written into a private temporary folder under
names the service makes up (``000.jpg``, ``001.png``...): nothing from the client is used as a path, and
the folder is removed when the answer is ready. So a score here is exactly what ``pawtf predict`` prints
for the same file, and a bad file is reported by its name while the others are scored.

Example:

>>> service = PhotoService("saved_models/demo")                                   # doctest: +SKIP
>>> ranked = service.score([Upload("rex.jpg", open("rex.jpg", "rb").read())])    # doctest: +SKIP
>>> ranked["photos"][0]["score"]                                                 # doctest: +SKIP
41.7
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import logging
import math
import tempfile
import threading
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
from PIL import Image

from pawtf.data.images import DEFAULT_MAX_PIXELS, ImageError, load_rgb
from pawtf.data.photos import PHOTO_EXTENSIONS, resize_like_training
from pawtf.data.schema import FLAGS

__all__ = ["APP_METHODS", "DEFAULT_METHOD", "LimitError", "Limits", "PhotoService", "Upload", "describe_map",
           "overlay_png"]

logger = logging.getLogger(__name__)

#: The saliency method shown first: Grad-CAM++ with a run (about a second a photo on a CPU), the vanilla
#: gradient with a SavedModel (which has no feature map to take a class-activation map from).
DEFAULT_METHOD = "gradcam++"
#: Methods the page offers, fastest first; those needing the Keras model's feature map are left out for a
#: SavedModel.
APP_METHODS = ("gradcam++", "gradcam", "vanilla", "smoothgrad", "rise")
_NEEDS_FEATURE_MAP = ("gradcam++", "gradcam")
#: RISE's mask count on the page: enough for a stable map (it stops early once settled) in seconds.
_RISE_MASKS = 1000
#: Longest side of the photo under an overlay or a crop preview.
DISPLAY_SIDE = 640
#: Suffixes kept for the staged copy of an upload (the reader sniffs the content anyway); HEIC/HEIF
#: decode where Pillow has the pillow-heif plug-in.
_SUFFIXES = PHOTO_EXTENSIONS + (".heic", ".heif")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may hold: ``max_photos`` photos, each at most ``max_bytes`` bytes and
    ``max_pixels`` pixels (width x height, read from the header before decoding: the decompression-bomb
    guard)."""

    max_photos: int = 20
    max_bytes: int = 25 * 2 ** 20
    max_pixels: int = DEFAULT_MAX_PIXELS


class Upload(NamedTuple):
    """One uploaded file: the name the user's computer gave it (shown, never used as a path), its bytes and
    its size in bytes (when the bytes were not all read: a file over the limit)."""

    name: str
    data: bytes
    size: int | None = None


class LimitError(ValueError):
    """A request over :class:`Limits` as a whole (too many photos); the page shows the message."""


def _register_heif() -> bool:
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def _amount(n: int) -> str:
    """A byte count for people.

    >>> _amount(200_000), _amount(25 * 2 ** 20)
    ('195 kB', '25.0 MB')
    """
    return f"{n / 1024:.0f} kB" if n < 2 ** 20 else f"{n / 2 ** 20:.1f} MB"


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _png(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False, compress_level=3)
    return buf.getvalue()


def _display(photo: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    h, w = photo.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return photo
    return resize_like_training(photo, (max(1, round(w * scale)), max(1, round(h * scale))))


def overlay_png(photo: np.ndarray, saliency: np.ndarray) -> bytes:
    """``photo`` (RGB uint8, any size; shown at most :data:`DISPLAY_SIDE` px) with ``saliency`` ([h, w] in
    [0, 1], stretched to the photo) laid over it in the colours of every pawtf figure
    (:data:`pawtf.explain.figures.CMAP`, half opaque), as PNG bytes."""
    from matplotlib import colormaps

    from pawtf.explain.figures import ALPHA, CMAP, fit_to

    shown = _display(photo).astype(np.float32)
    colours = colormaps[CMAP](np.clip(fit_to(saliency, shown.shape[:2]), 0, 1))[..., :3] * 255.0
    return _png((1 - ALPHA) * shown + ALPHA * colours)


_PLACES = (("upper left", "top", "upper right"), ("left side", "centre", "right side"),
           ("lower left", "bottom", "lower right"))


def describe_map(saliency: np.ndarray, what: str = "score") -> str:
    """One plain sentence on a saliency map ([h, w] in [0, 1]): where the model looked.

    >>> m = np.zeros((30, 30)); m[2:8, 2:8] = 1
    >>> describe_map(m)
    "Red and yellow show what moved this photo's predicted score most; blue barely mattered. Here the model looks mostly at the upper left of the photo (a small area: 2% of the photo holds half of what mattered)."
    """
    saliency = np.clip(np.asarray(saliency, np.float64), 0, None)
    total = saliency.sum()
    lead = f"Red and yellow show what moved this photo's predicted {what} most; blue barely mattered."
    if not np.isfinite(total) or total <= 0:
        return lead + " Here nothing stood out: the model's output hardly depends on any one part of the photo."
    h, w = saliency.shape
    ys, xs = np.indices(saliency.shape)
    cy, cx = (ys * saliency).sum() / total, (xs * saliency).sum() / total
    place = _PLACES[min(2, int(3 * cy / h))][min(2, int(3 * cx / w))]
    ordered = np.sort(saliency.ravel())[::-1]
    half = int(np.searchsorted(np.cumsum(ordered), total / 2)) + 1
    share = half / saliency.size
    spread = ("a small area" if share < 0.1 else "a fair part of the photo" if share < 0.25
              else "much of the photo")
    return (f"{lead} Here the model looks mostly at the {place} of the photo ({spread}: {share:.0%} of the "
            "photo holds half of what mattered).")


class PhotoService:
    """One model, loaded once, answering the page's questions (see the module doc).

    Args:
        model: a run folder or an exported SavedModel (a version folder, or a model folder: its latest),
            or a scorer already loaded (:func:`pawtf.scorers.load_scorer`).
        limits: what one request may hold.
        rater: optionally a photo rater (``--task rater``; run folder, export or scorer): every photo then
            gets its verdict (good / retake) beside the ranking, and its reasons on request
            (:meth:`rate`; in words where the rater was trained on named inputs, ``--head fc``).

    Calls may come from several threads at once (the web server's): each call stages its own photos, and
    the model is used by one call at a time, so answers never mix.
    """

    def __init__(self, model, limits: Limits = Limits(), rater=None):
        from pawtf.scorers import Scorer, load_scorer
        from pawtf.tasks.outputs import GOOD_OUTPUT

        self.limits = limits
        self.heif = _register_heif()
        self.scorer = model if isinstance(model, Scorer) else load_scorer(model)
        self.rater = None if rater is None else rater if isinstance(rater, Scorer) else load_scorer(rater)
        if self.rater is not None and GOOD_OUTPUT not in self.rater.task.output_names:
            raise ValueError(f"--rater {rater}: a {self.rater.task.name} model; --rater takes a photo rater "
                             "(trained with --task rater)")
        self._why = None
        run = self.scorer.run
        self.model_path = Path(run.path if run is not None else getattr(self.scorer, "path", model))
        self._lock = threading.Lock()
        self._explainers: dict[str, object] = {}
        self._serving_model = None
        self.info = self._model_info()

    # ------------------------------------------------------------------------------------- the model
    @property
    def methods(self) -> tuple[str, ...]:
        """The saliency methods this model can show."""
        if self.scorer.run is not None:
            return APP_METHODS
        return tuple(m for m in APP_METHODS if m not in _NEEDS_FEATURE_MAP)

    def _model_info(self) -> dict:
        """What the model panel shows: task, backbone, training data, validation figures, the error band."""
        from pawtf.predict import is_demo_model
        from pawtf.runs import DEMO_MODEL_NOTE

        scorer, run = self.scorer, self.scorer.run
        if run is not None:
            metrics, backbone = dict(run.metrics), run.config.model.backbone
            kind = "run folder"
        else:
            info = getattr(scorer, "info", {}) or {}
            metrics, backbone = dict(info.get("metrics") or {}), info.get("backbone", "unknown")
            kind = "exported SavedModel"
        demo = is_demo_model(scorer)
        trained_on = metrics.get("trained_on") or {}
        rmse = metrics.get("val_rmse")
        figures = {k: v for k, v in metrics.items()
                   if k.startswith("val_") and isinstance(v, (int, float)) and math.isfinite(v)}
        if rmse is not None and math.isfinite(rmse):
            band = (f"Scores within about {rmse:.0f} points of each other are equally good: that is the "
                    f"model's typical error on photos it did not learn from (validation RMSE {rmse:.1f}).")
        else:
            band = ("This model has no validation figures (it was never evaluated): small differences in "
                    "score may mean nothing.")
        return {
            "name": self.model_path.name if run is not None else
            f"{self.model_path.parent.name}, version {self.model_path.name}", "kind": kind, "task": scorer.task.name, "backbone": backbone,
            "image_size": scorer.image_size, "uses_flags": bool(scorer.uses_metadata),
            "flags": list(FLAGS) if scorer.uses_metadata else [],
            "predicts_score": bool(scorer.task.predicts_score),
            "trained_on": trained_on, "synthetic_demo": demo, "warning": DEMO_MODEL_NOTE if demo else None,
            "validation": figures, "error_band": band, "methods": list(self.methods),
            "default_method": self.methods[0],
            "limits": dataclasses.asdict(self.limits),
            "rater": self._rater_info(),
        }

    def _rater_info(self) -> dict | None:
        """What the page says of the rater, if there is one."""
        from pawtf.predict import is_demo_model

        if self.rater is None:
            return None
        run = self.rater.run
        metrics = dict(run.metrics) if run is not None else dict((getattr(self.rater, "info", {}) or {}).get(
            "metrics") or {})
        auc, balanced = metrics.get("good_auc"), metrics.get("good_balanced_accuracy")
        figures = ", ".join(f"{k} {v:.2f}" for k, v in (("ROC-AUC", auc), ("balanced accuracy", balanced))
                            if isinstance(v, (int, float)))
        return {"model": self.rater.description, "validation": figures or "no validation figures",
                "reasons_in_words": run is not None and run.config.model.head == "fc",
                "synthetic_demo": is_demo_model(self.rater)}

    # ---------------------------------------------------------------------------------- the uploads
    def _check_count(self, uploads: Sequence[Upload]) -> None:
        if not uploads:
            raise LimitError("no photos were sent: choose or drop one or more photos")
        if len(uploads) > self.limits.max_photos:
            raise LimitError(f"{len(uploads)} photos sent; at most {self.limits.max_photos} at a time "
                             "(the app's --max-photos): send them in smaller groups")

    def _problem(self, upload: Upload) -> str | None:
        """Why `upload` is refused before decoding (too many bytes or pixels), or None."""
        limits = self.limits
        size = len(upload.data) if upload.size is None else upload.size
        if size == 0:
            return "empty file (0 bytes)"
        if size > limits.max_bytes or len(upload.data) > limits.max_bytes:
            return (f"{_amount(size)} is over the limit of {_amount(limits.max_bytes)} a photo (the app's "
                    "--max-mb)")
        try:  # the header only: a decompression bomb is refused before any pixel is decoded
            with Image.open(io.BytesIO(upload.data)) as img:
                width, height = img.size
        except Exception:  # noqa: BLE001 - an unreadable file: the training reader says why, below
            if Path(upload.name).suffix.lower() in (".heic", ".heif") and not self.heif:
                return "HEIC photo, and this installation cannot read HEIC: pip install pillow-heif, or send a JPEG"
            return None
        if width * height > limits.max_pixels:
            return (f"{width} x {height} pixels is over the limit of {limits.max_pixels:,} pixels a photo "
                    "(the app's --max-pixels)")
        return None

    @contextlib.contextmanager
    def _staged(self, uploads: Sequence[Upload]) -> Iterator[list[Path | str]]:
        """The uploads written to a private temporary folder (removed afterwards), each as ``NNN<suffix>``;
        an upload refused by :meth:`_problem` stays its problem (a str) instead of a path."""
        with tempfile.TemporaryDirectory(prefix="pawtf-app-") as tmp:
            staged: list[Path | str] = []
            for i, upload in enumerate(uploads):
                problem = self._problem(upload)
                if problem is not None:
                    staged.append(problem)
                    continue
                suffix = Path(upload.name).suffix.lower()
                path = Path(tmp) / f"{i:03d}{suffix if suffix in _SUFFIXES else ''}"
                path.write_bytes(upload.data)
                staged.append(path)
            yield staged

    def _flags(self, flags: Sequence[Sequence[float]] | None, n: int) -> np.ndarray | None:
        """[n, 12] float32 flags (zeros where none are given), or None for an image-only model."""
        if not self.scorer.uses_metadata:
            return None
        out = np.zeros((n, len(FLAGS)), np.float32)
        for i, row in enumerate(list(flags or [])[:n]):
            if row is not None:
                row = np.asarray(row, np.float32).reshape(-1)
                if row.size != len(FLAGS) or not np.isin(row, (0, 1)).all():
                    raise ValueError(f"photo {i + 1}: flags must be {len(FLAGS)} values of 0 or 1 "
                                     f"({', '.join(FLAGS)})")
                out[i] = row
        return out

    # ----------------------------------------------------------------------------------- the answers
    def score(self, uploads: Sequence[Upload], flags: Sequence[Sequence[float]] | None = None) -> dict:
        """Score and rank `uploads` (with each photo's 12 flags where the model takes them).

        Returns:
            ``photos``: one entry per upload, best first as :func:`pawtf.predict.rank` orders them (those
            that could not be scored last, in upload order, with ``error``): ``index`` (its place in the
            request), ``name``, ``score``, ``label`` (the prediction in a few characters), ``extra``
            (what else the model predicts), ``flags``, ``rank`` (1 = best) and ``best``; ``n_scored``,
            and the model's ``error_band`` and ``warning``.

        Raises:
            LimitError: no photos, or more than the limit.
            ValueError: malformed flags.
        """
        from pawtf.predict import rank

        self._check_count(uploads)
        table = self._flags(flags, len(uploads))
        with self._staged(uploads) as staged:
            paths = [p for p in staged if isinstance(p, Path)]
            metadata = None if table is None else {p.stem: table[int(p.stem)] for p in paths}
            with self._lock:  # the library's own ranking: the order `pawtf rank` gives these files
                ranked = rank(self.scorer, paths, metadata, progress=False) if paths else []
        rows = []
        for s in ranked:
            i = int(Path(s.path).stem)
            rows.append(self._row(i, uploads[i], table, score=s.score if s.ok else None, label=s.label,
                                  value=s.rank_value, extra=_plain(s.extra), error=s.error))
        failed = [r for r in rows if r["error"] is not None]
        rows = [r for r in rows if r["error"] is None]
        failed += [self._row(i, u, table, error=item) for i, (u, item) in enumerate(zip(uploads, staged))
                   if isinstance(item, str)]
        rows += sorted(failed, key=lambda r: r["index"])  # as `rank`: errors last, in input order
        for k, r in enumerate(rows):
            r["rank"] = k + 1 if r["error"] is None else None
            r["best"] = k == 0 and r["error"] is None
        if self.rater is not None:
            self._add_verdicts(uploads, rows)
        return {"photos": rows, "n_scored": sum(r["error"] is None for r in rows),
                "error_band": self.info["error_band"], "warning": self.info["warning"]}

    def _add_verdicts(self, uploads: Sequence[Upload], rows: list[dict]) -> None:
        """The rater's verdict (``rater``: ``verdict``, ``p_good``) on every scored row."""
        from pawtf.predict import predict

        scored = [r for r in rows if r["error"] is None]
        with self._staged([uploads[r["index"]] for r in scored]) as staged:
            paths = [p for p in staged if isinstance(p, Path)]
            with self._lock:
                found = {Path(s.path).name: s for s in predict(self.rater, paths, progress=False)} if paths else {}
            for r, item in zip(scored, staged):
                s = found.get(item.name) if isinstance(item, Path) else None
                r["rater"] = None if s is None or not s.ok else {"verdict": s.extra["verdict"],
                                                                  "p_good": float(s.extra["p_good"])}

    def rate(self, upload: Upload) -> dict:
        """The rater's verdict on one photo with its reasons: ``verdict``, ``p_good``, ``sentence`` (the
        verdict and the inputs that pushed it most, in words, for a rater on named inputs) and
        ``reasons`` (``words`` and ``value``: each input's SHAP value in probability of good).

        Raises:
            ValueError: no rater was loaded, or an unreadable photo (named).
        """
        from pawtf.predict import predict

        if self.rater is None:
            raise ValueError("no rater is loaded: start the app with --rater RUN (a model trained with --task rater)")
        with self._staged([upload]) as staged:
            item = staged[0]
            if isinstance(item, str):
                raise ValueError(f"{upload.name}: {item}")
            with self._lock:
                (s,) = predict(self.rater, [item], progress=False)
                if not s.ok:
                    raise ValueError(f"{upload.name}: {s.error}")
                reasons = self._reasons(item)
        p_good = float(s.extra["p_good"])
        if reasons is None:
            sentence = (f"{s.extra['verdict']} (probability of good {p_good:.2f}). This rater reads the photo end "
                        "to end: the map above shows where it looked.")
        else:
            from pawtf.why import why_text

            sentence = why_text(reasons, p_good)
        return {"name": upload.name, "verdict": s.extra["verdict"], "p_good": p_good, "sentence": sentence,
                "reasons": [] if reasons is None else [{"words": r.words, "value": r.value} for r in reasons[:6]]}

    def _reasons(self, path: Path):
        """Feature-level SHAP of the rater for one staged photo (None: the rater has no named inputs)."""
        run = self.rater.run
        if run is None or run.config.model.head != "fc":
            return None
        from pawtf.why import WhyExplainer

        if self._why is None:
            self._why = WhyExplainer(run.model, run.config.model.features)
        size = self.rater.image_size
        return self._why.reasons(load_rgb(path, size=(size, size)).astype(np.float32)[None])[0]

    @staticmethod
    def _row(index: int, upload: Upload, table, **fields) -> dict:
        row = {"index": index, "name": upload.name, "score": None, "label": "", "value": None, "extra": {},
               "error": None,
               "flags": None if table is None else table[index].astype(int).tolist()}
        row.update(fields)
        return row

    def _photo(self, upload: Upload) -> tuple[np.ndarray, Path]:
        """Decode one upload as the training reader does; raises ValueError naming the file."""
        with self._staged([upload]) as staged:
            item = staged[0]
            if isinstance(item, str):
                raise ValueError(f"{upload.name}: {item}")
            try:
                return load_rgb(item, max_pixels=self.limits.max_pixels), item
            except ImageError as err:
                raise ValueError(f"{upload.name}: {err.problem}") from None

    def _explainer(self, method: str):
        if method not in self._explainers:
            from pawtf.explain import make_explainer, target_for

            task = self.scorer.task
            model = self.scorer.run.model if self.scorer.run is not None else self._serving()
            options = {"masks": _RISE_MASKS} if method == "rise" else {}
            self._explainers[method] = make_explainer(method, model, target=target_for(task), **options)
        return self._explainers[method]

    def _serving(self):
        """The SavedModel's ``serving_decoded`` signature as a Keras model (inputs ``image`` and
        ``metadata``, outputs by name), so the gradient and perturbation methods run on it."""
        if self._serving_model is None:
            from pawtf.export.wrap import serving_as_keras

            self._serving_model = serving_as_keras(self.scorer.path, self.scorer.image_size,
                                                   self.scorer.uses_metadata)
        return self._serving_model

    def explain(self, upload: Upload, method: str | None = None,
                flags: Sequence[float] | None = None) -> dict:
        """One photo's saliency overlay: ``overlay`` (a PNG data URL), ``sentence`` (what it shows, in
        plain words), ``method``, ``legend`` (the colours' ends) and ``score``.

        Raises:
            ValueError: an unreadable photo (named), or a method this model cannot show.
        """
        from pawtf.explain.figures import LEGEND

        method = (method or self.methods[0]).strip().lower()
        if method not in self.methods:
            raise ValueError(f"method {method!r} is not offered for this model; choose one of "
                             f"{', '.join(self.methods)}")
        photo, _ = self._photo(upload)
        table = self._flags(None if flags is None else [flags], 1)
        images = resize_like_training(photo, self.scorer.image_size).astype(np.float32)[None]
        with self._lock:
            explainer = self._explainer(method)
            saliency = np.asarray(explainer(images, table))[0]
            value = float(explainer.predict(images, table)[0])
        what = ("score" if self.scorer.task.predicts_score else
                f"chance of {self.scorer.task.default_target!r}")
        return {"name": upload.name, "method": method, "label": getattr(explainer, "label", method),
                "overlay": _data_url(overlay_png(photo, saliency), "image/png"),
                "sentence": describe_map(saliency, what), "legend": list(LEGEND), "value": value}

    def crop(self, upload: Upload, flags: Sequence[float] | None = None) -> dict:
        """Crop advice for one photo (:func:`pawtf.crop.advise_crop`): ``advice`` (in words), ``preview``
        (the photo with the candidate boxes, a PNG data URL), ``crop`` (the advised crop at full
        resolution as a data URL, or None: keep the photo), ``filename``, ``original``, ``best`` and
        ``gain``.

        Raises:
            ValueError: an unreadable photo (named), or a model that predicts no score.
        """
        from pawtf.crop import DEFAULT_SALIENCY, advise_crop, check_scorer, preview_image

        check_scorer(self.scorer)
        table = self._flags(None if flags is None else [flags], 1)
        with tempfile.TemporaryDirectory(prefix="pawtf-app-crop-") as out_dir, self._staged([upload]) as staged:
            item = staged[0]
            if isinstance(item, str):
                raise ValueError(f"{upload.name}: {item}")
            with self._lock:
                advice = advise_crop(self.scorer, item, None if table is None else table[0],
                                     saliency=DEFAULT_SALIENCY if self.scorer.run is not None else None,
                                     out_dir=out_dir)
            if advice.error:
                raise ValueError(f"{upload.name}: {advice.error}")
            preview, _ = preview_image(advice, max_side=DISPLAY_SIDE)
            crop = None
            if advice.saved is not None:
                mime = "image/png" if advice.saved.suffix == ".png" else "image/jpeg"
                crop = _data_url(advice.saved.read_bytes(), mime)
                advice.saved = None  # a temporary file, gone with this answer: the page offers the download
        stem = Path(upload.name).stem or "photo"
        words = advice.summary().replace(str(item), upload.name)
        return {"name": upload.name, "advice": words, "preview": _data_url(_png(preview), "image/png"),
                "crop": crop, "filename": f"{stem}_crop{'.png' if crop and 'png' in crop[:20] else '.jpg'}",
                "original": advice.original, "gain": advice.gain,
                "best": None if advice.best is None else {"name": advice.best.name, "box": list(advice.best.box),
                                                          "score": advice.best.score},
                "subject": None if advice.subject is None else getattr(advice.subject, "note", None)}


def _plain(extra: dict) -> dict:
    """A Score's ``extra`` as JSON-ready values."""
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v if isinstance(v, (str, int)) else
                str(v)) for k, v in extra.items()}
