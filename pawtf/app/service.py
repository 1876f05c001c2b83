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

import dataclasses
import logging
import math
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from pawtf.app.pictures import DISPLAY_SIDE, data_url, describe_map, overlay_png, png
from pawtf.app.uploads import LimitError, Limits, Upload, check_count, register_heif
from pawtf.app.uploads import staged as staged_files
from pawtf.data.images import ImageError, load_rgb
from pawtf.data.photos import resize_like_training
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
        self.heif = register_heif()
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

        check_count(uploads, self.limits)
        table = self._flags(flags, len(uploads))
        with staged_files(uploads, self.limits, self.heif) as staged:
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
        with staged_files([uploads[r["index"]] for r in scored], self.limits, self.heif) as staged:
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
        with staged_files([upload], self.limits, self.heif) as staged:
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
        with staged_files([upload], self.limits, self.heif) as staged:
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
                "overlay": data_url(overlay_png(photo, saliency), "image/png"),
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
        with tempfile.TemporaryDirectory(prefix="pawtf-app-crop-") as out_dir, staged_files([upload], self.limits, self.heif) as staged:
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
                crop = data_url(advice.saved.read_bytes(), mime)
                advice.saved = None  # a temporary file, gone with this answer: the page offers the download
        stem = Path(upload.name).stem or "photo"
        words = advice.summary().replace(str(item), upload.name)
        return {"name": upload.name, "advice": words, "preview": data_url(png(preview), "image/png"),
                "crop": crop, "filename": f"{stem}_crop{'.png' if crop and 'png' in crop[:20] else '.jpg'}",
                "original": advice.original, "gain": advice.gain,
                "best": None if advice.best is None else {"name": advice.best.name, "box": list(advice.best.box),
                                                          "score": advice.best.score},
                "subject": None if advice.subject is None else getattr(advice.subject, "note", None)}


def _plain(extra: dict) -> dict:
    """A Score's ``extra`` as JSON-ready values."""
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v if isinstance(v, (str, int)) else
                str(v)) for k, v in extra.items()}
